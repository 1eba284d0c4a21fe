"""GuardLink after its guard is gone: nothing is ever written to a descriptor number it no
longer owns (a CI failure: a feed landed in a control-socket client's connection)."""

from __future__ import annotations

import os
import subprocess

from vigil.daemon.guard import GuardLink


def test_a_closed_link_never_writes_to_a_reused_descriptor() -> None:
    feed_r, feed_w = os.pipe()
    fired_r, fired_w = os.pipe()
    proc = subprocess.Popen(["true"])
    link = GuardLink(proc, feed_w, fired_r)
    link.close()
    os.close(feed_r)
    os.close(fired_w)
    # The kernel gives the lowest free numbers first: the next pipe reuses the closed ones.
    r, w = os.pipe()
    r2, w2 = os.pipe()
    for fd in (r, w, r2, w2):
        os.set_blocking(fd, False)  # the old code read them: fail, never hang
    try:
        assert feed_w in (r, w, r2, w2), "the test needs the numbers to be reused"
        link.feed(["web"])
        link.bye()
        assert link.read_fired() is None
        for fd in (r, r2):
            try:
                assert os.read(fd, 100) == b"", "written into someone else's descriptor"
            except BlockingIOError:
                pass  # nothing there: as it must be
        assert link.dropped == 2
        link.close()  # twice is harmless
    finally:
        for fd in (r, w, r2, w2):
            os.close(fd)


def test_a_guard_whose_daemon_died_while_starting_it_leaves_quietly() -> None:
    """kill -9 of the daemon while it was handing a new guard its model (the torture saw
    it): the guard reads a short stdin, says so in one line and exits, with no traceback."""
    import subprocess
    import sys

    for model in (b"", b"\x80\x04\x95"):  # nothing, or the first bytes of a pickle
        r = subprocess.run([sys.executable, "-m", "vigil.daemon.guard", "98", "99"],
                           input=model, capture_output=True, timeout=30)
        assert r.returncode == 1
        assert b"Traceback" not in r.stderr and b"no model from the daemon" in r.stderr
