"""The shapes of the names that vigil.toml, Heartbeat's ha.d and keepalived.conf share, kept in
one place so that the three readers accept the same names: vigil's names (the cluster, nodes,
groups), the names of resource scripts, filesystem types and Linux interface names (and the
length of an address label, which is one). Each reader words its own message around them.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
SCRIPT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+-]*")
FSTYPE = re.compile(r"[a-z0-9._]+")
MAX_INTERFACE_NAME = 15  # characters: the kernel's IFNAMSIZ, 16 with the NUL


def is_ifname(s: str) -> bool:
    """A name the kernel takes for an interface: 1 to 15 characters, not "." or "..", and no
    '/', ':' or white space."""
    return bool(s) and len(s) <= MAX_INTERFACE_NAME and s not in (".", "..") and \
        not any(c in "/:" or c.isspace() for c in s)
