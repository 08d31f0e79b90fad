#!/usr/bin/env python3
"""TCP keepalive: peers that vanish without FIN or RST are reaped, so no
connection is held for ever (with the defaults too)."""

import subprocess
import time

import harness
from harness import Daemon, check

KEEPALIVE_TIMER = 2  # /proc/net/tcp "tr" field: the keepalive timer is armed


@harness.case()
def keepalive_default():
    """With the defaults, echod's side of a connection has the keepalive
    timer armed, first probe after 60 s of silence."""
    with Daemon() as d:
        d.start()
        s = d.connect()
        harness.echo(s, b"hello\n")
        t = harness.tcp_timer(d.listener().port, s.getsockname()[1])
        check(t is not None and t[0] == KEEPALIVE_TIMER and 50 <= t[1] <= 61,
              "keepalive timer of echod's side of an idle connection",
              "timer 2 (keepalive), due in 50..60 s", t)
        print("keepalive timer due in %.0f s" % t[1])
        s.close()
        d.stop()


@harness.case(timeout=120)
def keepalive_reaps_vanished_peer():
    """Peers that vanish without a FIN or RST (their packets stop, as when
    a host dies) are reaped by keepalive: echod's count returns to 0."""
    if not harness.in_private_netns():
        return
    with Daemon(config="tcp_keepalive = 1s\n") as d:
        d.start()
        socks = [d.connect() for _ in range(20)]
        for s in socks:
            harness.echo(s, b"about to vanish\n")
        d.wait_stats(lambda st: st[0] == 20, "20 current")
        subprocess.run(["ip", "link", "set", "lo", "down"], check=True)
        t0 = time.monotonic()
        # First probe after 1 s, then 3 more 10 s apart: about 31 s.
        st = d.wait_stats(lambda st: st[0] == 0, "every vanished peer reaped", timeout=90)
        print("20 vanished peers reaped %.0f s after they vanished (stats %s)" % (
            time.monotonic() - t0, st))
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        for s in socks:
            s.close()
        d.stop()


if __name__ == "__main__":
    harness.main()
