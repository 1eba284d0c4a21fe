"""The lab's packet loss (Lab.drop): per host, rules that drop some or all IP packets in or
out of one link, optionally only from or to one peer, as one nftables table (`inet
vigil_lab`) that each change replaces whole, atomically. Sans-IO: `script` is the text that
`nft -f -` loads in the host's namespace. (This kernel has no netem: nftables' numgen is the
lab's loss.)"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Direction = Literal["in", "out", "both"]
NFT_TABLE = "vigil_lab"


@dataclass(frozen=True, slots=True)
class DropRule:
    link: int
    direction: Literal["in", "out"]
    peer: str | None


class DropRules:
    def __init__(self) -> None:
        self._rules: dict[str, dict[DropRule, int]] = {}

    def set(self, host: str, direction: Direction, percent: int, link: int,
            peer: str | None = None) -> None:
        """Drop `percent` % of `host`'s packets on `link` in `direction` (0: stop); ValueError
        for a direction, percentage or peer address that is not one."""
        if direction not in ("in", "out", "both"):
            raise ValueError(f"direction must be 'in', 'out' or 'both', not {direction!r}")
        if not 0 <= percent <= 100:
            raise ValueError(f"percent must be within 0..100, not {percent}")
        if peer is not None:
            peer = str(ipaddress.ip_address(peer))
        rules = self._rules.setdefault(host, {})
        ways: tuple[Literal["in", "out"], ...] = ("in", "out") if direction == "both" \
            else (direction,)
        for d in ways:
            key = DropRule(link, d, peer)
            if percent:
                rules[key] = percent
            else:
                rules.pop(key, None)

    def clear(self, host: str, link: int | None = None) -> None:
        """Remove `host`'s rules: all of them, or those of one `link`."""
        rules = self._rules.setdefault(host, {})
        for key in list(rules):
            if link is None or key.link == link:
                del rules[key]

    def script(self, host: str, ifname: Callable[[int], str]) -> str:
        """The nft script that makes `host`'s table match its rules (and removes it when
        there are none); `ifname` names a link's interface."""
        rules = self._rules.get(host, {})
        script = [f"table inet {NFT_TABLE}", f"delete table inet {NFT_TABLE}"]
        if rules:
            ordered = sorted(rules.items(), key=lambda kv: repr(kv[0]))
            script += [f"table inet {NFT_TABLE} {{",
                       "  chain in { type filter hook prerouting priority -300; policy accept;"]
            script += [f"    {_rule(r, p, ifname)}" for r, p in ordered if r.direction == "in"]
            script += ["  }",
                       "  chain out { type filter hook postrouting priority 300; policy accept;"]
            script += [f"    {_rule(r, p, ifname)}" for r, p in ordered if r.direction == "out"]
            script += ["  }", "}"]
        return "\n".join(script) + "\n"


def _rule(rule: DropRule, percent: int, ifname: Callable[[int], str]) -> str:
    dev = ifname(rule.link)
    parts = [f'iifname "{dev}"' if rule.direction == "in" else f'oifname "{dev}"']
    if rule.peer is not None:
        family = "ip6" if ":" in rule.peer else "ip"
        parts.append(f"{family} {'saddr' if rule.direction == 'in' else 'daddr'} {rule.peer}")
    if percent < 100:
        parts.append(f"numgen random mod 100 < {percent}")
    parts.append("drop")
    return " ".join(parts)
