"""lab/drops.py: the nft script of the lab's packet loss, sans IO (the rules themselves are
loaded into real namespaces by tests/integration/test_lab.py)."""

from __future__ import annotations

import pytest

from vigil.lab.drops import DropRules


def ifname(link: int) -> str:
    return f"eth{link}"


def test_rules_replace_each_other_and_clear_by_link() -> None:
    d = DropRules()
    assert d.script("n1", ifname) == "table inet vigil_lab\ndelete table inet vigil_lab\n"
    d.set("n1", "both", 30, 0)
    d.set("n1", "in", 100, 1, peer="10.0.0.2")
    d.set("n1", "in", 50, 0)  # replaces the in half of the first
    text = d.script("n1", ifname)
    assert 'iifname "eth0" numgen random mod 100 < 50 drop' in text
    assert 'oifname "eth0" numgen random mod 100 < 30 drop' in text
    assert 'iifname "eth1" ip saddr 10.0.0.2 drop' in text
    assert text.count(" drop") == 3 and d.script("n2", ifname).count("drop") == 0
    d.clear("n1", 0)
    assert d.script("n1", ifname).count(" drop") == 1
    d.set("n1", "in", 0, 1, peer="10.0.0.2")  # percent 0: removed
    assert " drop" not in d.script("n1", ifname)


@pytest.mark.parametrize("args,message", [
    (("sideways", 10, 0), "direction must be"), (("in", 101, 0), "percent must be"),
    (("in", 10, 0, "not-an-address"), "does not appear to be"),
])
def test_bad_rules_are_refused_and_change_nothing(args: tuple[object, ...],
                                                 message: str) -> None:
    d = DropRules()
    d.set("n1", "out", 20, 0)
    before = d.script("n1", ifname)
    with pytest.raises(ValueError, match=message):
        d.set("n1", *args)  # type: ignore[arg-type]
    assert d.script("n1", ifname) == before
