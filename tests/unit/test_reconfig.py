"""reconfig.plan: a reload touches exactly what changed, and refuses what needs a restart."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from hypothesis import given, strategies as st

from vigil import model
from vigil.config import toml
from tests.unit.test_config import in_cluster
from vigil.reconfig import first_difference, plan

def group(name: str, *ips: str, home: str = "n1", monitor: str = "") -> str:
    out = f'[[group]]\nname = "{name}"\nhome = "{home}"\n'
    for ip in ips:
        out += (f'[[group.resource]]\ntype = "ip"\naddress = "{ip}/24"\ninterface = "eth0"\n'
                + (f'monitor = {{ interval = "{monitor}" }}\n' if monitor else ""))
    return out


def cluster(*groups: str, settings: str = "") -> model.Cluster:
    return toml.parse(in_cluster(*settings.splitlines()) + "".join(groups), "t.toml")


def test_unchanged_is_empty() -> None:
    c = cluster(group("web", "10.0.1.1"), group("db", "10.0.2.1", home="n2"))
    p = plan(c, cluster(group("web", "10.0.1.1"), group("db", "10.0.2.1", home="n2")))
    assert p.empty and not p.refused and p.lines() == []


def test_add_remove_change_each_named_and_nothing_else() -> None:
    old = cluster(group("web", "10.0.1.1", "10.0.1.2"), group("db", "10.0.2.1"),
                  group("mail", "10.0.3.1"))
    new = cluster(group("web", "10.0.1.1", "10.0.1.9"), group("mail", "10.0.3.1"),
                  group("dns", "10.0.4.1", home="n2"))
    p = plan(old, new)
    assert [g.name for g in p.added] == ["dns"]
    assert [g.name for g in p.removed] == ["db"]
    assert [(c.group.name, c.index, c.restarts) for c in p.changed] == [("web", 1, True)]
    assert p.lines() == [
        "+ group dns (home n2, 1 resources)", "- group db",
        "~ group web: restart from resource 2 (ip 10.0.1.9/24 on eth0)"]
    assert not p.refused


def test_monitors_home_and_policy_restart_nothing() -> None:
    old = cluster(group("web", "10.0.1.1", monitor="10s"))
    new = cluster(group("web", "10.0.1.1", monitor="2s", home="n2"))
    (c,) = plan(old, new).changed
    assert not c.restarts and c.monitors
    assert plan(old, new).lines() == ["~ group web: nothing to restart; monitors renewed"]


def test_appending_and_truncating_restart_only_the_tail() -> None:
    two = cluster(group("web", "10.0.1.1", "10.0.1.2"))
    three = cluster(group("web", "10.0.1.1", "10.0.1.2", "10.0.1.3"))
    (grow,) = plan(two, three).changed
    (shrink,) = plan(three, two).changed
    assert (grow.index, grow.restarts) == (2, True)  # start the new third one only
    assert (shrink.index, shrink.restarts) == (2, True)  # stop the old third one only
    assert plan(three, two).lines() == [
        "~ group web: restart from resource 3 (ip 10.0.1.3/24 on eth0)"]


def test_settings_apply_live_and_the_rest_is_refused_whole() -> None:
    old = cluster(group("web", "10.0.1.1"))
    p = plan(old, cluster(group("web", "10.0.1.1"), settings="auto_failback = false\n"))
    assert p.settings == ["auto_failback: true -> false"] and not p.refused
    p = plan(old, cluster(group("web", "10.0.1.1"),
                          settings='deadtime = "20s"\ninitdead = "40s"\nport = 700\n'))
    assert "timings.deadtime: 0.3 -> 20.0" in p.refused, p.refused
    assert any(r.startswith("port: 694 -> 700") for r in p.refused)
    p = plan(old, dataclasses.replace(old, key_file=Path("/elsewhere")))
    assert p.refused == ["key_file: /etc/vigil/authkey -> /elsewhere"]


resources = st.lists(st.sampled_from(["10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4"]),
                     max_size=4, unique=True)


@given(resources, resources)
def test_first_difference_keeps_exactly_the_common_prefix(a: list[str], b: list[str]) -> None:
    ra = cluster(group("web", *a)).groups[0].resources if a else ()
    rb = cluster(group("web", *b)).groups[0].resources if b else ()
    i = first_difference(ra, rb)
    assert ra[:i] == rb[:i]
    assert i == min(len(ra), len(rb)) or ra[i] != rb[i]
