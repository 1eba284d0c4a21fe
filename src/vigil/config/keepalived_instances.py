"""The vrrp_instance and vrrp_sync_group blocks of keepalived.conf: an instance's state,
priority, advert interval, interface, unicast peer, virtual addresses, tracked scripts, notify
scripts and gratuitous ARP settings, and the instances a sync group moves together; every
keyword vigil has no equivalent for is listed with the reason.
"""

from __future__ import annotations

import ipaddress

from vigil.config import export
from vigil.config.keepalived_importer import GARP, LVS, Importer, Instance, InstanceGroup, Vip
from vigil.config.keepalived_syntax import Statement, title
from vigil.config.names import MAX_INTERFACE_NAME

_HOOKS = ("not run as it is (keepalived passes its own arguments): a [notify] hook reads "
          "VIGIL_EVENT: became_owner for MASTER, became_standby for BACKUP, group_failed "
          "for FAULT")
_NOTIFY = ("notify_master", "notify_backup", "notify_fault")  # kept as comments in the group
_VRRP = "VRRP protocol setting: vigil does not speak VRRP"
_INSTANCE_DROPPED: dict[str, str] = {
    **dict.fromkeys(("mcast_src_ip", "mcast_dst_ip", "version", "native_ipv6", "unicast_ttl",
                     "check_unicast_src", "unicast_fault_no_peer", "old_unicast_checksum",
                     "v3_checksum_as_v2", "skip_check_adv_addr", "strict_mode", "accept",
                     "no_accept", "lower_prio_no_advert", "higher_prio_send_advert",
                     "down_timer_adverts", "timer_expired_backup", "kernel_rx_buf_size",
                     "linkbeat_use_polling", "debug", "vrf", "track_src_ip"), _VRRP),
    **dict.fromkeys(("use_vmac", "vmac_xmit_base", "use_vmac_addr", "use_ipvlan"),
                    "vigil moves addresses with the node's own MAC and gratuitous ARP"),
    **dict.fromkeys(("notify_stop", "notify", "notify_master_rx_lower_pri", "notify_deleted",
                     "notify_priority_changes"), _HOOKS),
    **dict.fromkeys(("track_file", "track_process", "track_bfd"),
                    "no such tracker in vigil: an exec resource's status command can check it"),
    **dict.fromkeys(("garp_lower_prio_delay", "garp_lower_prio_repeat", "garp_extra_if",
                     "garp_master_refresh_repeat", "gna_interval"),
                    "vigil announces on takeover, after a conflict and every arp_refresh"),
    "virtual_routes": "vigil manages addresses, not routes",
    "virtual_rules": "vigil manages addresses, not policy rules",
    "smtp_alert": "vigil sends no mail: every state change is a log line",
    "dont_track_primary": "vigil's ip resources always check their interface",
    "promote_secondaries": "set net.ipv4.conf.IFACE.promote_secondaries=1 with sysctl",
    "no_virtual_ipaddress": "a vigil group needs at least one resource",
    "lvs_sync_daemon_interface": LVS,
    "auth_hmac": f"replaced by vigil's HMAC key file (`vigil keygen {export.KEY_FILE}`)",
}


class InstanceReader(Importer):
    """vrrp_instance blocks with what is inside them, and vrrp_sync_group blocks."""

    def instance(self, s: Statement) -> Instance:
        where = title(s)
        inst = Instance(s.args[0], s)
        state = "BACKUP"
        tracks: list[Statement] = []
        for d in self.block(s, where):
            k = d.keyword
            if k == "state":
                v = self.value(d, where)
                if v is not None and v.upper() not in ("MASTER", "BACKUP"):
                    self.report(d, f"{where}.state", f"{v[:40]!r} is not MASTER or BACKUP")
                elif v is not None:
                    state = v.upper()
            elif k == "priority":
                inst.priority = self.integer(d, where, 1, 255) or inst.priority
            elif k == "virtual_router_id":
                inst.vrid = self.integer(d, where, 1, 255)
                if inst.vrid is not None:
                    inst.comments.append(f"virtual_router_id {inst.vrid}: VRRP's number for "
                                         "the instance; vigil names groups instead")
            elif k == "advert_int":
                inst.advert = self.number(d, where, 0.01, 255) or inst.advert
            elif k == "interface":
                v = self.value(d, where)
                inst.interface = None if v is None else self.ifname(d, f"{where}.{k}", v)
            elif k == "nopreempt":
                inst.nopreempt = True
            elif k == "preempt":
                inst.nopreempt = False
            elif k == "preempt_delay":
                inst.preempt_delay = self.number(d, where, 0, 1000)
            elif k == "unicast_src_ip":
                v = self.value(d, where)
                inst.src = None if v is None else self.address(d, f"{where}.{k}", v)
            elif k == "unicast_peer":
                self.unicast_peer(d, inst)
            elif k == "authentication":
                self.authentication(d, where)
            elif k in ("virtual_ipaddress", "virtual_ipaddress_excluded"):
                tracks.append(d)
            elif k == "track_interface":
                names = [t.keyword for t in self.block(d, where)]
                self.drop(d, f"{where} track_interface {' '.join(names)[:60]}",
                          "vigil's ip resources check their own interface (up, with carrier) "
                          "and move the group when it fails; other interfaces and weights are "
                          "not watched")
            elif k == "track_script":
                tracks.append(d)
            elif k in _NOTIFY:
                self.notify(d, inst, where)
            elif k in GARP:
                self.arp_setting(d, where, GARP[k], inst.arp)
            elif k in _INSTANCE_DROPPED:
                self.drop(d, f"{where} {k}", _INSTANCE_DROPPED[k])
            else:
                self.drop(d, f"{where} {k[:40]}", "unknown keyword in vrrp_instance")
        inst.master = state == "MASTER" or inst.priority == 255
        for d in tracks:  # after interface, which addresses default to
            if d.keyword == "track_script":
                self.track_script(d, inst, where)
            else:
                for e in self.block(d, where):
                    vip = self.vip(e, f"{where}.{d.keyword}", inst.interface)
                    if vip is not None:
                        inst.vips.append(vip)
        if not any(d.keyword == "interface" for d in s.block or ()) and (
                inst.src is None or inst.peer is None):
            self.report(s, f"{where}.interface", "required keyword is missing (vigil needs it "
                        "for the heartbeat unless unicast_src_ip and unicast_peer are set)")
        if not inst.vips:
            self.drop(s, where, "no virtual_ipaddress: a vigil group needs at least one "
                                "resource")
        return inst

    def notify(self, d: Statement, inst: Instance, where: str) -> None:
        inst.comments.append(f"{d.keyword} {' '.join(d.args)} ({d.file}:{d.line}): {_HOOKS}")
        self.drop(d, f"{where} {d.keyword}", f"{_HOOKS} (kept as a comment in the group)")

    def unicast_peer(self, d: Statement, inst: Instance) -> None:
        where = f"{title(inst.where)}.unicast_peer"
        peers = [p for p in self.block(d, title(inst.where))]
        if len(peers) != 1:
            self.report(d, where, f"vigil supports exactly two nodes for now: give one peer, "
                                  f"found {len(peers)}")
            return
        if peers[0].args:
            self.drop(peers[0], f"{where} {' '.join(peers[0].args)[:40]}", _VRRP)
        inst.peer = self.address(peers[0], where, peers[0].keyword)

    def authentication(self, d: Statement, where: str) -> None:
        kind = "?"
        for a in self.block(d, where):
            if a.keyword == "auth_type":
                kind = self.value(a, f"{where}.authentication") or kind
            elif a.keyword != "auth_pass":
                self.drop(a, f"{where} authentication {a.keyword[:40]}",
                          "unknown keyword in authentication")
        self.drop(d, f"{where} authentication (auth_type {kind})",
                  f"replaced by vigil's HMAC key file: run `vigil keygen {export.KEY_FILE}` "
                  "on one node and copy the file to the other (mode 0600); auth_pass is not "
                  "used")

    def track_script(self, d: Statement, inst: Instance, where: str) -> None:
        for t in self.block(d, where):
            found = self.scripts.get(t.keyword)
            if found is None:
                if t.keyword not in self.script_names:
                    self.report(t, f"{where}.track_script", f"no vrrp_script named "
                                                           f"{t.keyword[:40]!r}")
                continue
            self.used_scripts.add(t.keyword)
            script = found[0]
            weight, reverse = script.weight, script.reverse
            if t.args[:1] == ("weight",) and t.args[2:] in ((), ("reverse",), ("noreverse",)):
                w = self.integer(t, f"{where}.track_script", -253, 253,
                                 t.args[1] if len(t.args) > 1 else "")
                weight, reverse = w or 0, t.args[2:] == ("reverse",)
            elif t.args:
                self.report(t, f"{where}.track_script", "expects SCRIPT [weight N [reverse]]")
                continue
            if reverse:
                self.drop(t, f"{where} track_script {t.keyword} (reverse)", "vigil moves a "
                          "group when a check fails, never when it succeeds")
                continue
            how = "a failing check moves the group (keepalived: FAULT state)"
            if weight:
                how = (f"weight {weight:+d} changed keepalived's priority, which moved the "
                       "address only if it crossed the peer's priority; vigil moves the group "
                       "whenever the check fails: check that is what you meant")
            inst.checks.append((script, how))

    def vip(self, e: Statement, key: str, default: str | None) -> Vip | None:
        """`<IPADDR>[/<MASK>] [brd X] [dev X] [label X] [scope X] ...` (ip address add)."""
        if e.block is not None:
            self.report(e, key, "expects an address per line, not a { } block")
            return None
        text = e.keyword
        try:
            address = ipaddress.ip_interface(text)
        except ValueError:
            self.report(e, key, f"{text[:60]!r} is not an address such as 192.168.1.100/24")
            return None
        ip = address.ip
        if ip.is_multicast or ip.is_unspecified or ip.is_loopback:
            self.report(e, key, f"{ip} is not a unicast address")
            return None
        comments = [] if "/" in text else [
            f"keepalived's default prefix /{address.network.prefixlen} (no subnet route)"]
        interface, label = default, None
        args = list(e.args)
        while args:
            opt = args.pop(0)
            if opt in ("home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin",
                       "no_track", "use_vmac"):
                self.drop(e, f"{text} {opt}", "an option vigil's ip resources do not take")
                continue
            if opt not in ("brd", "broadcast", "dev", "label", "scope", "peer",
                           "preferred_lft"):
                self.report(e, key, f"unexpected {opt[:40]!r} after the address (one address "
                                    "per line; options: brd, dev, label, scope, ...)")
                return None
            if not args:
                self.report(e, key, f"{opt} needs a value")
                return None
            v = args.pop(0)
            if opt == "dev":
                interface = self.ifname(e, key, v)
                if interface is None:
                    return None
            elif opt == "label":
                label = v
            elif opt in ("brd", "broadcast") and isinstance(address, ipaddress.IPv4Interface) \
                    and v not in ("+", str(address.network.broadcast_address)):
                self.drop(e, f"{text} brd {v[:40]}", f"vigil sets the subnet's broadcast "
                          f"address ({address.network.broadcast_address})")
            elif opt not in ("brd", "broadcast"):
                self.drop(e, f"{text} {opt} {v[:40]}", "an option vigil's ip resources do "
                          "not take")
        if interface is None:
            self.report(e, key, f"{text}: no interface (add dev IFACE, or interface to the "
                                "vrrp_instance)")
            return None
        if label is not None and (len(label) > MAX_INTERFACE_NAME or
                                  not label.startswith(interface)):
            self.drop(e, f"{text} label {label[:40]}", f"vigil's labels start with the "
                      f"interface name ({interface}) and have at most 15 characters")
            label = None
        return Vip(address, interface, label, comments, e)

    def sync_groups(self, statements: tuple[Statement, ...],
                    instances: list[Instance]) -> dict[str, InstanceGroup]:
        """Sync group name -> its group: the member instances, and its own checks and
        comments in `extra`."""
        by_name = {i.name: i for i in instances}
        member_of: dict[str, str] = {}
        groups: dict[str, InstanceGroup] = {}
        for s in statements:
            if s.keyword != "vrrp_sync_group":
                continue
            where = title(s)
            if len(s.args) != 1 or s.args[0] in groups:
                self.report(s, where, "expects one name, not used by another sync group")
                continue
            members: list[Instance] = []
            extra = Instance(s.args[0], s)
            for d in self.block(s, where):
                if d.keyword == "group":
                    for m in self.block(d, where):
                        for name in (m.keyword, *m.args):
                            if name not in by_name:
                                self.report(m, f"{where}.group", f"no vrrp_instance named "
                                                                 f"{name[:40]!r}")
                            elif name in member_of:
                                self.report(m, f"{where}.group", f"{name} is already in "
                                                                 f"vrrp_sync_group "
                                                                 f"{member_of[name]}")
                            else:
                                member_of[name] = s.args[0]
                                members.append(by_name[name])
                elif d.keyword == "track_script":
                    self.track_script(d, extra, where)
                elif d.keyword in _NOTIFY:
                    self.notify(d, extra, where)
                elif d.keyword in _INSTANCE_DROPPED or d.keyword == "track_interface":
                    self.drop(d, f"{where} {d.keyword}", _INSTANCE_DROPPED.get(
                        d.keyword, "vigil's ip resources check their own interface"))
                else:
                    self.drop(d, f"{where} {d.keyword[:40]}", "unknown keyword in "
                                                               "vrrp_sync_group")
            if not members:
                self.report(s, f"{where}.group", "a sync group needs a group { } of "
                                                 "vrrp_instance names")
                continue
            groups[s.args[0]] = InstanceGroup(s.args[0], members, s, extra)
        return groups
