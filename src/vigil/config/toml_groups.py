"""The [[group]] tables of vigil.toml and their [group.policy]: a group's name, its home
node, its resources (read by config/toml_resources.py) and how many failures move it. The
floating addresses are unique across groups and against the nodes' heartbeat addresses;
`promotable` and its postgresql resource follow config/toml_replica.py's rules.
"""

from __future__ import annotations

from pathlib import Path

from vigil import model
from vigil.config.locate import KeyPath
from vigil.config.toml_checker import Table
from vigil.config.toml_resources import ResourceReader
from vigil.config.toml_values import as_bool, as_duration, as_name, int_in, or_default

_GROUP_KEYS = ("name", "home", "resource", "policy", "promotable")
_POLICY_KEYS = ("migration_threshold", "failure_timeout")


class GroupReader(ResourceReader):
    """[[group]] with its resources and [group.policy]."""

    def groups(self, doc: Table) -> tuple[model.Group, ...] | None:
        before = len(self.problems)
        groups: list[model.Group] = []
        seen: set[str | None] = set()  # group names (a set: 10,000 groups must not take 10 s)
        floating = dict(self.heartbeat_addresses)  # address -> who uses it
        data_dirs: dict[Path, str] = {}  # of postgresql resources -> who uses it
        nodes = self.node_names
        for p, t in self.tables(doc, "group", "[[group]]"):
            self.unknown(t, p, _GROUP_KEYS, "[[group]]")
            name = self.field(t, p, "name", as_name, required=True)
            home = self.field(t, p, "home", as_name, required=True)
            if name is not None and name in seen:
                self.report((*p, "name"), f"group {name!r} is defined twice")
            seen.add(name)
            if home is not None and nodes is not None and home not in nodes:
                self.report((*p, "home"), f"{home!r} is not a node; nodes: "
                            f"{', '.join(nodes) or '(none)'}")
            resources: list[model.Resource] = []
            entries = self.tables(t, "resource", "[[group.resource]]")
            if t.get("resource", []) == []:
                self.report((*p, "resource"), "a group needs at least one [[group.resource]]")
            for n, rt in entries:
                r = self.resource(rt, (*p, *n), floating, f"{name}-{n[-1]}")
                if r is not None:
                    resources.append(r)
            ids = [r.id for r in resources if isinstance(r, model.OcfResource)]
            for rid in {i for i in ids if ids.count(i) > 1}:
                self.report((*p, "resource"), f"two OCF resources share the id {rid!r}")
            policy = self.group_policy(t, p)
            promotable = self.field(t, p, "promotable", as_bool) if "promotable" in t else False
            self.replica_rules(p, entries, resources, promotable, doc, data_dirs)
            if name is not None and home is not None:
                groups.append(model.Group(name=name, home=home, resources=tuple(resources),
                                          policy=policy, promotable=promotable is True))
        return None if len(self.problems) != before else tuple(groups)

    def group_policy(self, t: Table, p: KeyPath) -> model.GroupPolicy:
        d = model.GroupPolicy()
        pp: KeyPath = (*p, "policy")
        pol = self.optional_table(t, pp, _POLICY_KEYS, "[group.policy]")
        if pol is None:
            return d
        threshold = self.field(pol, pp, "migration_threshold", int_in(1, 1000))
        timeout = self.field(pol, pp, "failure_timeout", as_duration)
        return model.GroupPolicy(or_default(threshold, d.migration_threshold),
                                 or_default(timeout, d.failure_timeout))
