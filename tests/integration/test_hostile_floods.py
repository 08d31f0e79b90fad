#!/usr/bin/env python3
"""Hostile clients at scale, continued: connect-and-close floods, one-byte
writers, more clients than file descriptors, and signals in the middle
of the floods (the helpers live in test_hostile.py)."""

import hashlib
import signal
import socket
import threading
import time
import harness
from harness import Daemon, check, check_bytes
from test_hostile import NormalLoad, _connect, _isolated, _wait_idle
from test_limits import _watch


FLOOD, FLOOD_THREADS = 5000, 4


def _flood(lst, n, stop, counts, errors, data=b""):
    try:
        for _ in range(n):
            if stop.is_set():
                return
            s = socket.socket(lst.family, socket.SOCK_STREAM)
            s.settimeout(10)
            try:
                s.connect(lst.address)
                if data:
                    s.send(data)
                counts[0 if not data else 1] += 1
            except ConnectionRefusedError:
                if stop.is_set():
                    return
                raise
            finally:
                s.close()
    except BaseException as e:
        errors.append(e)


@harness.case(timeout=120, alone=True)
def connect_close_flood():
    """5,000 connect-then-close at once from 4 threads (two close at once,
    two send one byte first, so that those reach echod past
    TCP_DEFER_ACCEPT) while two clients keep echoing: echod serves them
    exactly, and its count returns to 0."""
    if not _isolated():
        return
    harness.raise_nofile()
    with Daemon(config="") as d:
        d.start()
        lst = d.listener()
        normal = NormalLoad(lst, 2, size=16 * 1024)
        normal.start()
        stop = threading.Event()
        counts, errors = [0, 0], []
        per = FLOOD // FLOOD_THREADS
        t0 = time.monotonic()
        threads = [threading.Thread(target=_flood, args=(lst, per, stop, counts, errors,
                                                         b"x" if k % 2 else b""), daemon=True)
                   for k in range(FLOOD_THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        took = time.monotonic() - t0
        check(not errors, "flood connects succeed", "no error", errors[:3])
        normal.finish(min_rounds=3, what="2 normal clients during the connect flood")
        st = _wait_idle(d, what="after the flood")
        made = sum(counts)
        print("connect flood: %d connect+close (%d of them after one byte) in %.1fs (%.0f/s);"
              " stats: current %d, total %d" % (made, counts[1], took, made / took, st[0], st[1]))
        check(made == per * FLOOD_THREADS, "flood connects made", per * FLOOD_THREADS, made)
        check(st[1] >= counts[1], "every flood connection that sent a byte reached echod",
              ">= %d total connections" % counts[1], st[1])
        o = _connect(lst)
        harness.echo(o, b"after the flood\n")
        o.close()
        _wait_idle(d)
        d.stop()


@harness.case(timeout=90, alone=True)
def sigint_connect_flood():
    """SIGINT in the middle of a connect-and-close flood: exit 0 within
    shutdown_timeout."""
    if not _isolated():
        return
    harness.raise_nofile()
    with Daemon(config="shutdown_timeout = 3s\n") as d:
        d.start()
        lst = d.listener()
        stop = threading.Event()
        counts, errors = [0, 0], []
        threads = [threading.Thread(target=_flood, args=(lst, FLOOD, stop, counts, errors,
                                                         b"x" if k % 2 else b""), daemon=True)
                   for k in range(FLOOD_THREADS)]
        for t in threads:
            t.start()
        time.sleep(1.0)
        before = sum(counts)
        t_int = time.monotonic()
        d.signal(signal.SIGINT)
        rc = d.wait_exit(15)
        took = time.monotonic() - t_int
        stop.set()
        for t in threads:
            t.join(20)
        d.check_sanitizers()
        # Connects refused once echod closed its listener end the flood;
        # other errors (a reset of a connection echod closed) are fine too.
        errs = [e for e in errors if not isinstance(e, (ConnectionRefusedError, ConnectionResetError))]
        print("SIGINT after %d flood connects: exit %s after %.2fs; %d connects in all" % (
            before, rc, took, sum(counts)))
        check(before > 100, "test setup: the flood was running", "> 100 connects in 1s", before)
        check(rc == 0, "exit status after SIGINT during the flood", 0, rc)
        check(took <= 3 + 3, "exit within shutdown_timeout", "<= 6s", "%.2fs" % took)
        check(not errs, "flood threads end cleanly", "no unexpected error", errs[:3])


@harness.case(timeout=60)
def one_byte_writes():
    """A client does 10,000 one-byte sends (TCP_NODELAY) with zero-length
    sends between them while reading: the exact sequence comes back; a
    client sending only zero-length writes stays connected and served."""
    if not _isolated():
        return
    n = 10000
    seq = bytes((i * 7 + 3) & 0xFF for i in range(n))
    with Daemon() as d:
        d.start()
        lst = d.listener()
        zero = _connect(lst)
        for _ in range(1000):
            zero.send(b"")
        s = _connect(lst, nodelay=True)
        got = bytearray()
        err = []

        def reader():
            try:
                s2 = s.dup()
                s2.settimeout(20)
                while len(got) < n:
                    c = s2.recv(65536)
                    if not c:
                        break
                    got.extend(c)
                s2.close()
            except OSError as e:
                err.append(e)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t0 = time.monotonic()
        for i in range(n):
            check(s.send(seq[i:i + 1]) == 1, "one-byte send #%d" % i, 1, 0)
            if i % 10 == 0:
                s.send(b"")
        t.join(30)
        took = time.monotonic() - t0
        check(not err, "reading the one-byte echoes", "no error", err)
        check_bytes("echo of 10,000 one-byte writes (sequence)", seq, got)
        print("10,000 one-byte sends (and 1,000 zero-length ones) echoed in order in %.2fs" % took)
        harness.echo(zero, b"after 1,000 zero-length sends\n", what="echo after zero-length sends")
        st = d.stats()
        check(st[2] >= n, "bytes echoed (stats)", ">= %d" % n, st[2])
        s.close()
        zero.close()
        _wait_idle(d)
        d.stop()


# ---------------------------------------------------------------- out of fds

@harness.case(timeout=120, alone=True)
def beyond_nofile():
    """RLIMIT_NOFILE = 256 and 600 clients: echod does not busy-loop (under
    1 CPU-second in 3 s of saturation), and every waiting client gets its
    exact echo once others leave."""
    if not _isolated():
        return
    nofile, clients, measure = 256, 600, 3.0
    harness.raise_nofile()
    with Daemon(nofile=nofile) as d:
        d.start()
        lst = d.listener()
        socks = [_connect(lst) for _ in range(clients)]
        msgs = [b"client %03d " % i + hashlib.sha256(b"%d" % i).hexdigest().encode() + b"\n"
                for i in range(clients)]
        for s, m in zip(socks, msgs):
            s.sendall(m)
        out = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            new = _watch(socks, msgs, [i for i in range(clients) if i not in out], 1.5)
            if not new:
                break
            out.update(new)
        served = [i for i, o in out.items() if o == "echo"]
        bad = {i: o for i, o in out.items() if o != "echo"}
        check(not bad, "clients beyond the fd limit wait (they are not dropped)", "no EOF or reset", bad)
        check(0 < len(served) < nofile, "clients served with RLIMIT_NOFILE = %d" % nofile,
              "between 1 and %d" % (nofile - 1), len(served))
        d.check_alive("echod keeps running out of file descriptors")
        cpu0, t0 = d.cpu_seconds(), time.monotonic()
        time.sleep(measure)
        cpu1, t1 = d.cpu_seconds(), time.monotonic()
        st = d.stats()
        print("saturated at %d fds: %d served, %d waiting; %.2f CPU-s in %.2fs wall; stats: current %d,"
              " accept waits %d" % (nofile, len(served), clients - len(out), cpu1 - cpu0, t1 - t0,
                                    st[0], st[3]))
        check(cpu1 - cpu0 < 1.0, "echod's CPU time while out of fds (no busy loop)",
              "< 1.0 CPU-second in %.1fs" % (t1 - t0), "%.2fs" % (cpu1 - cpu0))
        waves = 0
        waiting = [i for i in range(clients) if i not in out]
        while waiting:
            for i in served:
                socks[i].close()
            new = {}
            t_wave = time.monotonic() + 20
            while time.monotonic() < t_wave and not new:
                new = _watch(socks, msgs, waiting, 2.0)
            more = {}
            while True:  # settle: take what else this wave serves
                more = _watch(socks, msgs, [i for i in waiting if i not in new], 1.0)
                if not more:
                    break
                new.update(more)
            bad = {i: o for i, o in new.items() if o != "echo"}
            check(new, "waiting clients are served once others leave (wave %d)" % (waves + 1),
                  "echoes", "none within 20s; %d still waiting" % len(waiting))
            check(not bad, "waiting clients get their echo", "echo", bad)
            served = list(new)
            waiting = [i for i in waiting if i not in new]
            waves += 1
        print("every waiting client got its echo, in %d waves" % waves)
        for s in socks:
            s.close()
        _wait_idle(d)
        d.stop()


if __name__ == "__main__":
    harness.main()
