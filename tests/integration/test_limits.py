#!/usr/bin/env python3
"""Limits: max_connections, running out of file descriptors, idle timeout."""

import resource
import select
import selectors
import time

import harness
from harness import Daemon, check, check_bytes, check_equal


def _watch(socks, msgs, only, timeout, want=None):
    """Watches the sockets whose index is in `only` for up to timeout seconds
    (or until `want` of them have an outcome). Returns {index: outcome},
    outcome being "echo" (its message came back exactly), "eof" or "reset"."""
    sel = selectors.DefaultSelector()
    bufs = {}
    for i in only:
        socks[i].setblocking(False)
        sel.register(socks[i], selectors.EVENT_READ, i)
        bufs[i] = bytearray()
    out = {}
    deadline = time.monotonic() + timeout
    try:
        while len(out) < len(bufs) and (want is None or len(out) < want):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                i = key.data
                try:
                    chunk = socks[i].recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    out[i] = "reset"
                    sel.unregister(socks[i])
                    continue
                if not chunk:
                    out[i] = "eof"
                    sel.unregister(socks[i])
                    continue
                bufs[i] += chunk
                if len(bufs[i]) >= len(msgs[i]):
                    check_bytes("echo on client #%d" % i, msgs[i], bufs[i])
                    out[i] = "echo"
                    sel.unregister(socks[i])
    finally:
        sel.close()
        for i in only:
            socks[i].setblocking(True)
    return out


@harness.case(timeout=90)
def max_connections():
    """max_connections = N: of N+k clients only N are served at once; the
    others wait in the backlog and are served as served ones close."""
    n, k = 3, 2
    with Daemon(config="max_connections = %d\n" % n) as d:
        d.start()
        socks = [d.connect() for _ in range(n + k)]
        msgs = [b"client %d\n" % i for i in range(n + k)]
        for s, m in zip(socks, msgs):
            s.sendall(m)
        out = _watch(socks, msgs, range(n + k), timeout=10, want=n)
        served = sorted(i for i, o in out.items() if o == "echo")
        check(len(served) == n and len(out) == n, "clients served at max_connections = %d" % n,
              "%d echoes" % n, out)
        # The others must not be served (nor dropped) while the limit is reached.
        waiting = [i for i in range(n + k) if i not in out]
        out = _watch(socks, msgs, waiting, timeout=1.0)
        check(not out, "clients beyond the limit wait in the backlog", "no echo, no EOF for 1s", out)
        st = d.stats()
        check(st[0] == n, "current connections at the limit (SIGUSR1 stats)", n, st[0])
        # Each close lets exactly one waiting client in.
        for round_ in range(k):
            socks[served.pop(0)].close()
            out = _watch(socks, msgs, waiting, timeout=10, want=1)
            check(len(out) == 1 and list(out.values()) == ["echo"],
                  "after close #%d one waiting client is served" % (round_ + 1), "one echo", out)
            i = next(iter(out))
            waiting.remove(i)
            served.append(i)
            if waiting:
                out = _watch(socks, msgs, waiting, timeout=0.5)
                check(not out, "still only %d served after close #%d" % (n, round_ + 1),
                      "the rest wait", out)
        for i in served:
            harness.echo(socks[i], b"again %d" % i, what="second echo on client #%d" % i)
        st = d.stats()
        check(st[:2] == (n, n + k), "(current, total) connections", (n, n + k), st[:2])
        for s in socks:
            s.close()
        d.stop()


@harness.case(timeout=150, alone=True)
def fd_exhaustion():
    """RLIMIT_NOFILE = 64 and more clients than fds: the daemon does not
    busy-loop (little CPU while saturated), warns, keeps running, and serves
    the waiting clients once others close."""
    nofile, clients, measure = 64, 100, 3.0
    harness.raise_nofile()
    with Daemon(nofile=nofile) as d:
        d.start()
        socks = [d.connect() for _ in range(clients)]
        msgs = [b"client %03d\n" % i for i in range(clients)]
        for s, m in zip(socks, msgs):
            s.sendall(m)
        # Collect what is served until things settle (no news for 1.5s).
        out = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = _watch(socks, msgs, [i for i in range(clients) if i not in out], timeout=1.5)
            if not new:
                break
            out.update(new)
        served = [i for i, o in out.items() if o == "echo"]
        dropped = [i for i, o in out.items() if o != "echo"]
        check(0 < len(served) < nofile, "clients served with RLIMIT_NOFILE = %d" % nofile,
              "between 1 and %d" % (nofile - 1), len(served))
        d.check_alive("echod keeps running out of file descriptors")

        # Saturated: a listener with pending connections and no fd to take them.
        since = d.mark()
        cpu0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(measure)
        cpu1, t1 = d.cpu_seconds(), time.monotonic()
        share = (cpu1 - cpu0) / (t1 - t0)
        print("saturated: %.2fs CPU in %.2fs wall (%.0f%%); %d served, %d dropped, %d waiting" % (
            cpu1 - cpu0, t1 - t0, 100 * share, len(served), len(dropped), clients - len(out)))
        check(share < 0.30, "daemon CPU time while out of file descriptors (no busy loop)",
              "< 30%% of %.1fs wall" % (t1 - t0), "%.2fs (%.0f%%)" % (cpu1 - cpu0, 100 * share))
        warnings = d.find_log(r"(?i)file descriptors|too many open files")
        check(warnings, "a warning about running out of file descriptors",
              "a log line containing 'file descriptors' or 'Too many open files'", d.log())
        during = d.find_log(r"(?i)file descriptors|too many open files", since)
        check(len(during) <= measure + 2, "warnings are rate-limited while saturated",
              "at most %d in %.0fs" % (measure + 2, measure), "%d lines" % len(during))

        # Free the fds: every client not yet served must now be. A client the
        # daemon had to drop (reserve-fd strategy) must be served on reconnect.
        for i in served:
            socks[i].close()
        waiting = [i for i in range(clients) if i not in out]
        late = _watch(socks, msgs, waiting, timeout=30) if waiting else {}
        check(all(late.get(i) in ("echo", "eof", "reset") for i in waiting),
              "waiting clients are served (or dropped) once fds are free",
              "an outcome for each of %d" % len(waiting),
              "no outcome for %s" % [i for i in waiting if i not in late])
        dropped += [i for i in waiting if late[i] != "echo"]
        for i in dropped:
            socks[i].close()
            socks[i] = d.connect()
            harness.echo(socks[i], msgs[i], what="echo for client #%d reconnecting after a drop" % i)
        print("after freeing fds: %d waiting clients served, %d dropped ones served on reconnect" % (
            len(waiting) - len([i for i in waiting if late[i] != "echo"]), len(dropped)))
        for i, s in enumerate(socks):
            if i not in served:
                s.close()
        d.check_alive()
        d.stop()


def _eof_now(sock):
    """True if the peer's EOF is there to read (nothing else is expected)."""
    r, _, _ = select.select([sock], [], [], 0)
    if not r:
        return False
    got = sock.recv(4096)
    check(got == b"", "nothing but EOF on an idle connection", "EOF", got)
    return True


@harness.case()
def idle_timeout():
    """-i 200ms: an idle connection is closed by the server (EOF), not before
    it has been idle that long; one that keeps talking stays open."""
    # Every time below is taken before the daemon's last activity on that
    # connection, so a correct daemon can never close "too early" here.
    min_idle = 0.18  # 200ms less the daemon's millisecond rounding
    with Daemon(args=["-i", "200ms"]) as d:
        d.start()
        t_silent = time.monotonic()
        silent = d.connect()  # never sends anything
        active = d.connect()
        t_idle = time.monotonic()
        idle = d.connect()
        harness.echo(idle, b"hello", what="first echo on the idle connection")
        closed = {}
        # The active client talks every 50ms for 1.5s: it must never be closed.
        t_end = time.monotonic() + 1.5
        i = 0
        while time.monotonic() < t_end:
            harness.echo(active, b"ping %d" % i, what="echo #%d on the active connection" % i)
            i += 1
            for name, s in (("idle", idle), ("silent", silent)):
                if name not in closed and _eof_now(s):
                    closed[name] = time.monotonic()
            time.sleep(0.05)
        for name, s in (("idle", idle), ("silent", silent)):
            if name not in closed:
                harness.expect_eof(s, timeout=10, what="EOF on the %s connection" % name)
                closed[name] = time.monotonic()
        for name, t0 in (("idle", t_idle), ("silent", t_silent)):
            check(closed[name] - t0 >= min_idle, "%s connection not closed before the timeout" % name,
                  ">= %.2fs after its last activity" % min_idle, "%.3fs" % (closed[name] - t0))
        t_active = time.monotonic()
        harness.echo(active, b"still here", what="echo on the active connection after 1.5s")
        harness.expect_eof(active, timeout=10, what="EOF on the active connection once it falls silent")
        check(time.monotonic() - t_active >= min_idle, "active connection closed only after it fell idle",
              ">= %.2fs" % min_idle, "%.3fs" % (time.monotonic() - t_active))
        for s in (idle, silent, active):
            s.close()
        d.check_alive()
        d.stop()


@harness.case()
def raises_soft_fd_limit():
    """Started with a soft RLIMIT_NOFILE below the hard one, echod raises
    it to the hard one: it never caps itself below what it may have."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard < 512:
        raise harness.Skip("the hard fd limit is %s" % hard)
    with Daemon(nofile=(256, hard)) as d:
        d.start()
        with open("/proc/%d/limits" % d.pid) as f:
            line = [x for x in f if x.startswith("Max open files")][0]
        got = [int(v) for v in line.split()[3:5]]
        print(line.strip())
        check_equal("echod's soft and hard fd limits", [hard, hard], got)
        d.stop()


if __name__ == "__main__":
    harness.main()
