"""A group's balancer as the group's first resource: its start puts the rules of the
group's virtual servers in the kernel before the group's own resources start (the floating
address arrives with its rules ready), and its stop takes them out after the group's own
resources stopped. It is not one of the group's configured resources (the policy's resource
numbers do not count it); services/groups.py runs it around them."""

from __future__ import annotations

from vigil.balancer import apply
from vigil.balancer.service import Balancer
from vigil.resources.base import Agent


class BalancerAgent(Agent):
    def __init__(self, balancer: Balancer, group: str) -> None:
        self.balancer, self.group = balancer, group
        self.name = f"balancer {group}"
        self.timeout = apply.TIMEOUT + 2.0

    def idle(self) -> bool:
        return not self.balancer.serves(self.group)

    async def start(self) -> None:
        error = await self.balancer.activate(self.group)
        if error is not None:
            raise self.error(error)

    async def stop(self) -> None:
        error = await self.balancer.deactivate(self.group)
        if error is not None:
            raise self.error(error)

    async def probe(self) -> bool:
        try:
            return await self.balancer.present(self.group)
        except apply.NftError as e:
            raise self.error(str(e)) from None
