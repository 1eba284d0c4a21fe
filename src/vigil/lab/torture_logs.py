"""What the torture (lab/torture.py) reads in a node's log once a run is over: a traceback,
an error line no injected fault explains, or a resource started twice without a stop in
between. Pure functions over the log's text, so each rule is tested on its own."""

from __future__ import annotations

import re

from vigil.lab.cluster import RESET_LINE

# Error lines each fault may cause (beyond them, an ERROR line is a violation).
EXPECTED_ERRORS = [
    r"guard: daemon (died|silent)", r"holds no lease of the witness", r"monitor: ",
    r"failed: .*not running", r"did not run for", r"UNSAFE TEST BUILD",
    r"the guard process .* exited", r"still answered by",
]
_ALLOWED = re.compile("|".join(EXPECTED_ERRORS))
_ACTION = re.compile(r"(?:guard: )?(ip \S+ on eth0|exec appd) (start|stop): ok|"
                     + re.escape(RESET_LINE))


def log_violations(node: str, text: str) -> list[tuple[str, str]]:
    """(kind, detail) for what `node`'s log shows wrong: "log" or "start_stop"."""
    found = []
    lines = text.splitlines()
    at = next((i for i, line in enumerate(lines) if "Traceback" in line), None)
    if at is not None:
        found.append(("log", f"traceback in {node}'s log:\n" +
                      "\n".join(lines[max(0, at - 3):at + 30])))
    error = next((line for line in lines if ": ERROR: " in line and not _ALLOWED.search(line)),
                 None)
    if error is not None:
        found.append(("log", f"unexplained error on {node}: {error[-200:]}"))
    twice = started_twice(text)
    if twice is not None:
        found.append(("start_stop", f"{twice} started twice on {node} without a stop"))
    return found


def started_twice(text: str) -> str | None:
    """The first resource whose starts and stops do not alternate (the guard's stops count;
    a watchdog reset of the host stops everything)."""
    running: dict[str, bool] = {}
    for m in _ACTION.finditer(text):
        if m.group(0) == RESET_LINE:
            running.clear()
            continue
        name, action = m.group(1), m.group(2)
        if action == "start" and running.get(name):
            return name
        running[name] = action == "start"
    return None
