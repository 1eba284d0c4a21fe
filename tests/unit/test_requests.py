"""An operator's requests by name (policy.request): what each name runs, and what is refused
before anything runs."""

from __future__ import annotations

import pytest

from tests.unit.sim import Sim
from vigil import policy


def test_each_name_runs_its_request_and_a_bad_argument_is_refused() -> None:
    sim = Sim(1)
    sim.run(5.0)
    n1 = sim.nodes["n1"]
    view = n1.view()
    assert policy.request(view, sim.cluster, "standby", "sideways").error == \
        "expected all, local or foreign, not 'sideways'"
    assert policy.request(view, sim.cluster, "move", group="nope").error.startswith(
        "no group named 'nope'")
    assert policy.request(view, sim.cluster, "standby", "local") == \
        policy.standby(view, sim.cluster, "local")
    assert policy.request(view, sim.cluster, "takeover") == policy.takeover(view, sim.cluster)
    with pytest.raises(ValueError):
        policy.request(view, sim.cluster, "reboot")
