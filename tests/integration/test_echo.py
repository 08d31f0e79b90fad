#!/usr/bin/env python3
"""TCP echo: exact bytes under load, tiny buffers, many connections,
half-close, resets, and a client that never reads."""

import hashlib
import os
import selectors
import signal
import socket
import struct
import time

import harness
from harness import MIB, Daemon, check, check_bytes, fail


@harness.case(timeout=300, alone=True)
def concurrent_16mib():
    """100 concurrent clients each send 16 MiB of random bytes; each gets
    exactly its own stream back (sha256 compared)."""
    clients, size, chunk = 100, 16 * MIB, 256 * 1024
    block = os.urandom(size)
    mv = memoryview(block)
    # Each client sends the block rotated by its own offset: a stream mixed
    # up with another connection's shows as a hash mismatch.
    offsets = [(i * 163841 + 4099) % size for i in range(clients)]
    expected = []
    for off in offsets:
        h = hashlib.sha256()
        h.update(mv[off:])
        h.update(mv[:off])
        expected.append(h.hexdigest())

    with Daemon() as d:
        d.start()
        sel = selectors.DefaultSelector()
        rbuf = memoryview(bytearray(chunk))
        conns = []
        for i in range(clients):
            s = d.connect()
            s.setblocking(False)
            c = {"i": i, "s": s, "sent": 0, "got": 0, "h": hashlib.sha256(), "off": offsets[i]}
            conns.append(c)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
        pending = clients
        t0 = time.monotonic()
        deadline = t0 + 120
        while pending:
            if time.monotonic() > deadline:
                slow = [c for c in conns if c["got"] < size][:5]
                fail("all %d clients echoed within 120s" % clients, "%d bytes each" % size,
                     ["#%d sent %d got %d" % (c["i"], c["sent"], c["got"]) for c in slow])
            for key, ev in sel.select(1.0):
                c = key.data
                s = c["s"]
                if ev & selectors.EVENT_WRITE and c["sent"] < size:
                    start = (c["off"] + c["sent"]) % size
                    try:
                        c["sent"] += s.send(mv[start:min(start + chunk, size)][:size - c["sent"]])
                    except BlockingIOError:
                        pass
                    if c["sent"] == size:
                        sel.modify(s, selectors.EVENT_READ, c)
                if ev & selectors.EVENT_READ:
                    try:
                        got = s.recv_into(rbuf)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail("client #%d receives its echo" % c["i"], "no error",
                             "%s after %d bytes" % (e, c["got"]))
                    if not got:
                        fail("client #%d receives its echo" % c["i"], "%d bytes" % size,
                             "EOF after %d bytes" % c["got"])
                    c["h"].update(rbuf[:got])
                    c["got"] += got
                    check(c["got"] <= size, "client #%d: no more bytes than sent" % c["i"],
                          size, c["got"])
                    if c["got"] == size:
                        sel.unregister(s)
                        pending -= 1
        elapsed = time.monotonic() - t0
        sel.close()
        for c in conns:
            check(c["h"].hexdigest() == expected[c["i"]],
                  "sha256 of what client #%d got back" % c["i"], expected[c["i"]], c["h"].hexdigest())
            c["s"].close()
        print("%d x %d MiB echoed in %.1fs" % (clients, size // MIB, elapsed))
        d.stop()


@harness.case(timeout=180)
def tiny_buffer():
    """buffer_size = 64 (the minimum): multi-MiB payloads still come back exact."""
    with Daemon(config="buffer_size = 64\n") as d:
        d.start()
        payloads = [os.urandom(3 * MIB), os.urandom(2 * MIB + 12345)]
        socks = [d.connect() for _ in payloads]
        got = harness.pump([(s, p, True) for s, p in zip(socks, payloads)], timeout=90,
                           what="buffer_size = 64 echo")
        for i, (p, g) in enumerate(zip(payloads, got)):
            check_bytes("client #%d echo with buffer_size = 64" % i, p, g)
        for s in socks:
            s.close()
        d.stop()


@harness.case(timeout=120)
def bulk_then_small():
    """One connection alternates bulk data (which it then reads with
    splice from the start of each wakeup) with small request and response
    messages, then half-closes: every byte comes back in order, and the
    FIN after the last one."""
    rnd = os.urandom(4 * MIB)
    with Daemon() as d:
        d.start()
        s = d.connect()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for phase in range(3):
            bulk = rnd[phase * 997:phase * 997 + (2 + phase) * MIB]
            got = harness.pump([(s, bulk, False)], timeout=60, what="bulk phase %d" % phase)[0]
            check_bytes("bulk phase %d echo" % phase, bulk, got)
            s.setblocking(True)
            for i in range(60):
                msg = rnd[i * 4099:i * 4099 + 1 + (i * 37) % 3000]
                s.sendall(msg)
                back = harness.recv_exact(s, len(msg), what="phase %d message %d" % (phase, i))
                check_bytes("phase %d message %d echo" % (phase, i), msg, back)
        tail = rnd[:3 * MIB + 5]
        got = harness.pump([(s, tail, True)], timeout=60, what="bulk then FIN")[0]
        check_bytes("last bulk echo, then EOF", tail, got)
        s.close()
        d.stop()


@harness.case()
def all_byte_values():
    """Every byte value, NUL and invalid UTF-8 included, split at odd places,
    comes back unchanged and in order (transform = none, the default)."""
    payload = bytes(range(256)) * 64 + b"\x00\x00\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1" + \
        "héllo wörld ✓ 日本".encode()
    with Daemon() as d:
        d.start()
        s = d.connect()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pos, step, got = 0, 1, bytearray()
        while pos < len(payload):
            piece = payload[pos:pos + step]
            s.sendall(piece)
            got += harness.recv_exact(s, len(piece), what="echo of bytes %d..%d" % (pos, pos + len(piece)))
            pos += len(piece)
            step = step * 3 % 1021 + 1
        check_bytes("echo of all byte values", payload, got)
        s.close()
        d.stop()


@harness.case(timeout=240, alone=True)
def many_connections():
    """5,000 connections open at once, each echoing its own message."""
    n = 5000
    limit = harness.raise_nofile()
    if limit < n + 200:
        raise harness.Skip("RLIMIT_NOFILE hard limit %d is below %d" % (limit, n + 200))
    with Daemon() as d:
        d.start()
        socks = []
        try:
            for i in range(n):
                socks.append(d.connect(timeout=20))
        except OSError as e:
            fail("open %d connections" % n, "%d connected" % n, "connect #%d failed: %s" % (len(socks), e))
        msgs = [struct.pack("!I", i) * 4 for i in range(n)]
        got = harness.pump([(s, m, False) for s, m in zip(socks, msgs)], timeout=60,
                           what="%d concurrent echoes" % n)
        for i, (m, g) in enumerate(zip(msgs, got)):
            check_bytes("echo on connection #%d of %d" % (i, n), m, g)
        current = d.stats()[0]
        check(current == n, "connections open at once (SIGUSR1 stats)", n, current)
        for s in socks:
            s.close()
        d.wait_stats(lambda st: st[0] == 0, "0 current after every client closed", timeout=30)
        d.stop()


@harness.case(timeout=90)
def accept_burst():
    """1,000 connections already waiting in the backlog when the daemon looks
    (it was stopped): one wakeup, and every one of them is accepted and served."""
    n = 1000
    harness.raise_nofile()
    with Daemon() as d:
        d.start()
        d.signal(signal.SIGSTOP)
        try:
            socks = [d.connect() for _ in range(n)]
            msgs = [b"burst %d\n" % i for i in range(n)]
            for s, m in zip(socks, msgs):
                s.sendall(m)
        finally:
            os.kill(d.pid, signal.SIGCONT)
        for i, (s, m) in enumerate(zip(socks, msgs)):
            got = harness.recv_exact(s, len(m), timeout=10,
                                     what="echo on connection #%d of %d that waited in the backlog" % (i, n))
            check_bytes("echo on connection #%d" % i, m, got)
        for s in socks:
            s.close()
        d.stop()


@harness.case()
def half_close():
    """Client sends 1 MiB then shutdown(SHUT_WR): gets all of it back, then EOF."""
    payload = os.urandom(MIB + 7)
    with Daemon() as d:
        d.start()
        s = d.connect()
        got = harness.pump([(s, payload, True)], timeout=30, what="half-closed echo")[0]
        check_bytes("echo before EOF after shutdown(SHUT_WR)", payload, got)
        s.close()
        d.stop()


@harness.case(timeout=90)
def half_close_pending():
    """The client's FIN arrives while the daemon still holds unsent data (the
    client is not reading yet): it sends all of it, then closes. Both data
    paths: transform = none (may move data without copying it) and upper."""
    payload = os.urandom(64 * MIB)
    for transform in ("none", "upper"):
        with Daemon(config="buffer_size = 1M\ntransform = %s\n" % transform) as d:
            d.start()
            s = d.connect()
            sent, held = harness.fill_until_held(d, s, payload)
            s.shutdown(socket.SHUT_WR)
            time.sleep(0.3)
            got = harness.expect_eof(s, timeout=30, what="EOF after the pending echo")
            expect = payload[:sent] if transform == "none" else harness.upper(payload[:sent])
            check_bytes("transform = %s: echo of %d bytes (%d held by echod when the FIN came)" % (
                transform, sent, held), expect, got)
            s.close()
            d.stop()


@harness.case(timeout=90)
def half_close_backpressure():
    """Client fills every buffer without reading, then shutdown(SHUT_WR): the
    daemon still sends everything back, then closes."""
    payload = os.urandom(64 * MIB)
    with Daemon() as d:
        d.start()
        s = d.connect()
        n = harness.fill_without_reading(s, payload, stall=1.0)
        check(n < len(payload), "a client that does not read is stopped by backpressure",
              "fewer than %d bytes accepted" % len(payload), "%d bytes accepted" % n)
        s.shutdown(socket.SHUT_WR)
        got = harness.expect_eof(s, timeout=30, what="EOF after the pending echo")
        check_bytes("pending data sent back after the client's shutdown(SHUT_WR)", payload[:n], got)
        s.close()
        d.stop()


@harness.case()
def silent_client():
    """A client that connects and says nothing for a while (the kernel holds
    back such connections from accept until their first bytes, or a second)
    is accepted all the same, and what it sends later comes back."""
    with Daemon() as d:
        d.start()
        s = d.connect()
        d.wait_stats(lambda st: st[0] == 1, "the silent client is accepted", timeout=20)
        harness.echo(s, b"spoke at last\n")
        s.close()
        d.wait_stats(lambda st: st[0] == 0, "0 current after the client closed")
        d.stop()


@harness.case()
def half_close_empty():
    """Client connects and at once shuts down its sending side: EOF, no data."""
    with Daemon() as d:
        d.start()
        s = d.connect()
        s.shutdown(socket.SHUT_WR)
        got = harness.expect_eof(s, timeout=10)
        check_bytes("data before EOF", b"", got)
        s.close()
        d.stop()


def _reset(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


@harness.case(timeout=120)
def reset_mid_stream():
    """Clients that reset (SO_LINGER 0 + close) mid-stream, while the daemon
    reads or writes, never stop it; it keeps serving and forgets them."""
    payload = os.urandom(8 * MIB)
    with Daemon() as d:
        d.start()
        for i in range(20):
            s = d.connect()
            if i % 2:
                # Daemon's send side full: it gets ECONNRESET/EPIPE on write.
                harness.fill_without_reading(s, payload, stall=0.2)
            else:
                # In the middle of an exchange.
                harness.echo(s, payload[:64 * 1024], what="echo before reset #%d" % i)
                s.sendall(payload[:256 * 1024])
            _reset(s)
            d.check_alive("echod survives reset #%d" % i)
        s = d.connect()
        harness.echo(s, payload[:2 * MIB], what="echo after 20 resets")
        s.close()
        d.wait_stats(lambda st: st[0] == 0, "0 current after the reset connections", timeout=20)
        d.check_alive()
        d.stop()


@harness.case(timeout=120, alone=True)
def never_reading_client():
    """Clients that write a lot and never read cannot grow the daemon's memory
    beyond buffer_size each (VmRSS; its fds stay bounded too), and the daemon
    keeps serving others. Both data paths: transform = none and upper."""
    bufsize = 64 * 1024
    clients = 4
    payload = os.urandom(64 * MIB)
    for transform in ("none", "upper"):
        with Daemon(config="buffer_size = 64K\ntransform = %s\n" % transform) as d:
            d.start()
            # Warm up: the first connection's allocations are not what we measure.
            w = d.connect()
            warm = payload[:4 * MIB]
            harness.echo(w, warm, what="warm-up echo",
                         expect=warm if transform == "none" else harness.upper(warm))
            w.close()
            d.wait_stats(lambda st: st[0] == 0, "warm-up connection closed")
            time.sleep(0.2)
            rss0, fds0 = d.rss_kib(), d.open_fds()
            hogs = [d.connect() for _ in range(clients)]
            written = [harness.fill_without_reading(h, payload, stall=0.5) for h in hogs]
            # Once more, in case the daemon was still reading.
            written = [n + harness.fill_without_reading(h, memoryview(payload)[n:], stall=0.3)
                       for h, n in zip(hogs, written)]
            rss1, fds1 = d.rss_kib(), d.open_fds()
            growth = rss1 - rss0
            bound = (clients * bufsize) // 1024 + 4096
            print("transform = %s: VmRSS %d KiB -> %d KiB (+%d KiB, bound %d KiB); fds %d -> %d; "
                  "clients wrote %s bytes" % (transform, rss0, rss1, growth, bound, fds0, fds1, written))
            check(growth <= bound, "transform = %s: VmRSS growth with %d never-reading clients "
                  "(buffer_size = 64K)" % (transform, clients),
                  "at most %d KiB" % bound, "%d KiB (from %d to %d)" % (growth, rss0, rss1))
            # A socket each, and at most a pipe (two fds) each for data in flight.
            check(fds1 - fds0 <= 3 * clients, "transform = %s: daemon fds with %d stuck clients" % (
                transform, clients), "at most %d more" % (3 * clients), "%d -> %d" % (fds0, fds1))
            for i, n in enumerate(written):
                check(n < len(payload), "backpressure stops never-reading client #%d" % i,
                      "fewer than %d bytes accepted" % len(payload), "%d bytes accepted" % n)
            # The daemon still serves others while the hogs are stuck.
            o = d.connect()
            harness.echo(o, payload[:MIB], what="echo for another client while %d hogs are stuck" % clients,
                         expect=payload[:MIB] if transform == "none" else harness.upper(payload[:MIB]))
            o.close()
            for h in hogs:
                _reset(h)
            d.stop()


if __name__ == "__main__":
    harness.main()
