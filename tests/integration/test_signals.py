#!/usr/bin/env python3
"""Signals: SIGTERM/SIGINT drain, SIGHUP reload (good and bad), SIGUSR1 stats."""

import os
import re
import signal
import socket
import struct
import time

import harness
from harness import check_equal, MIB, Daemon, check, check_bytes, fail

SHUTTING_DOWN = r"^echod: shutting down \((\d+) connections? open\)$"


def _not_served_after_shutdown(d):
    """A client arriving during the drain is not served: refused, closed, or no echo."""
    try:
        s = d.connect(timeout=2)
    except OSError:
        return
    try:
        s.sendall(b"late\n")
        s.settimeout(1.0)
        try:
            got = s.recv(100)
        except (socket.timeout, OSError):
            return
        check(got == b"", "a client connecting after the shutdown signal is not served",
              "refused, EOF or nothing", got)
    finally:
        s.close()


def _drain(sig, transform="none"):
    """Data echod holds when the signal comes is still delivered, then EOF and exit 0."""
    payload = os.urandom(64 * MIB)
    config = "buffer_size = 1M\nshutdown_timeout = 60s\ntransform = %s\n" % transform
    with Daemon(config=config) as d:
        d.start()
        s = d.connect()
        sent, held = harness.fill_until_held(d, s, payload)
        print("transform = %s: sent %d bytes, all read by echod, which holds %d of them unsent" % (
            transform, sent, held))
        since = d.mark()
        t0 = time.monotonic()
        d.signal(sig)
        m = d.wait_log(SHUTTING_DOWN, timeout=10, since=since)
        check(m.group(1) == "1", "connections counted in the shutdown line", "1", m.group(0))
        # echod may exit as soon as the kernel takes what it holds; what
        # matters is that every byte arrives before the EOF.
        if d.alive():
            _not_served_after_shutdown(d)
        expect = payload[:sent] if transform == "none" else harness.upper(payload[:sent])
        got = harness.recv_exact(s, sent, timeout=30, what="pending echo after %s" % sig.name)
        check_bytes("data delivered after %s" % sig.name, expect, got)
        rest = harness.expect_eof(s, timeout=15, what="EOF once the pending data is delivered")
        check_bytes("data after the pending echo", b"", rest)
        rc = d.wait_exit(15)
        d.check_sanitizers()
        check(rc == 0, "exit status after %s and the drain" % sig.name, 0, rc)
        print("exited %.1fs after %s" % (time.monotonic() - t0, sig.name))
        s.close()


@harness.case(timeout=120)
def sigterm_drain():
    _drain(signal.SIGTERM)
    _drain(signal.SIGTERM, transform="upper")


@harness.case(timeout=120)
def sigint_drain():
    _drain(signal.SIGINT)


def _read_to_end(sock, timeout):
    """Reads until EOF, an error or the timeout: (data, how it ended)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(buf), "no EOF within %ss" % timeout
        sock.settimeout(left)
        try:
            chunk = harness.recv_some(sock)
        except socket.timeout:
            continue
        except OSError as e:
            return bytes(buf), "%s: %s" % (e.__class__.__name__, e)
        if not chunk:
            return bytes(buf), "EOF"
        buf += chunk


@harness.case(timeout=120)
def sigterm_drain_half_closed():
    """A client that sent everything and half-closed before SIGTERM gets all of
    it back (also what was still queued unread towards the daemon), then EOF."""
    payload = os.urandom(64 * MIB)
    with Daemon(config="buffer_size = 64K\nshutdown_timeout = 60s\n") as d:
        d.start()
        s = d.connect()
        n = harness.fill_without_reading(s, payload, stall=1.0)
        s.shutdown(socket.SHUT_WR)
        time.sleep(0.2)
        q = harness.tcp_queues(d.listener().port, s.getsockname()[1])
        unread = q[1] if q else 0
        since = d.mark()
        d.signal(signal.SIGTERM)
        d.wait_log(SHUTTING_DOWN, timeout=10, since=since)
        got, end = _read_to_end(s, timeout=30)
        print("client sent %d bytes and half-closed; at SIGTERM echod had read %d of them "
              "(%d unread in its receive queue); the client got %d back, then %s" % (
                  n, n - unread, unread, len(got), end))
        # First what echod had already read: those echoes are pending, they
        # must arrive whatever the daemon does with the rest.
        check(len(got) >= n - unread, "the echoes pending in echod at SIGTERM are delivered",
              "at least the %d bytes echod had read" % (n - unread),
              "%d bytes, then %s" % (len(got), end))
        check_bytes("echo of all %d bytes sent before SIGTERM" % n, payload[:n], got)
        check(end == "EOF", "end of the drained connection", "EOF", end)
        rc = d.wait_exit(15)
        d.check_sanitizers()
        check(rc == 0, "exit status after SIGTERM", 0, rc)
        s.close()


def _talk_after_signal(d, s, count=20):
    """Makes s a client in mid-stream at SIGTERM (echod holds echoes for it,
    more of its data is still on the way), reads every echo back, then sends
    count messages one after another, each echoed."""
    payload = os.urandom(16 * MIB)
    n = harness.fill_without_reading(s, payload, stall=1.0)
    since = d.mark()
    d.signal(signal.SIGTERM)
    d.wait_log(SHUTTING_DOWN, timeout=10, since=since)
    got = harness.recv_exact(s, n, timeout=30, what="echo of the %d bytes sent before SIGTERM" % n)
    check_bytes("echo of the data sent before SIGTERM", payload[:n], got)
    for i in range(count):
        harness.echo(s, b"message %d after SIGTERM\n" % i,
                     what="echo of message %d sent after SIGTERM" % i)
        time.sleep(0.01)


@harness.case()
def sigterm_drain_talking():
    """A client still talking after SIGTERM is served while it talks (an
    empty receive queue between two messages does not end it), and its
    half-close brings the EOF: an orderly close, never a reset."""
    with Daemon(config="shutdown_timeout = 60s\n") as d:
        d.start()
        s = d.connect()
        _talk_after_signal(d, s)
        s.shutdown(socket.SHUT_WR)
        rest = harness.expect_eof(s, timeout=15, what="EOF after the half-close")
        check_bytes("data after the last echo", b"", rest)
        rc = d.wait_exit(15)
        d.check_sanitizers()
        check(rc == 0, "exit status after SIGTERM", 0, rc)
        s.close()


@harness.case()
def sighup_while_stopping():
    """A SIGHUP after SIGTERM, while a client is still served, reloads
    nothing (the new file is not read) and the drain goes on."""
    with Daemon(config="shutdown_timeout = 60s\n") as d:
        d.start()
        s = d.connect()
        harness.echo(s, b"before SIGTERM")
        d.signal(signal.SIGTERM)
        d.wait_log(r"^echod: shutting down")
        since = d.mark()
        d.write_config("this is = not a config\n")
        d.signal(signal.SIGHUP)
        harness.echo(s, b"served while stopping, after SIGHUP")
        check(not d.find_log(r"reload|configuration|echod\.conf", since),
              "no reload while stopping", "no reload line", d.stderr())
        s.shutdown(socket.SHUT_WR)
        harness.expect_eof(s, timeout=15)
        check_equal("exit status", 0, d.wait_exit(15))
        d.check_sanitizers()
        s.close()


@harness.case(timeout=120)
def sigterm_drain_falls_silent():
    """A client that talked after SIGTERM and then falls silent, without
    closing, is closed (EOF) once quiet, long before shutdown_timeout."""
    with Daemon(config="shutdown_timeout = 120s\n") as d:
        d.start()
        s = d.connect()
        _talk_after_signal(d, s, count=3)
        t0 = time.monotonic()
        rest = harness.expect_eof(s, timeout=60, what="EOF for a client silent after SIGTERM")
        check_bytes("data after the last echo", b"", rest)
        rc = d.wait_exit(30)
        d.check_sanitizers()
        check(rc == 0, "exit status after SIGTERM", 0, rc)
        print("closed %.1fs after the last message (shutdown_timeout = 120s)" % (time.monotonic() - t0))
        s.close()


@harness.case()
def sigterm_idle():
    """SIGTERM with idle connections: each gets EOF, exit 0 soon (not after
    shutdown_timeout, nothing is pending)."""
    with Daemon(config="shutdown_timeout = 60s\n") as d:
        d.start()
        socks = [d.connect() for _ in range(3)]
        for i, s in enumerate(socks):
            harness.echo(s, b"hi %d" % i)
        d.wait_stats(lambda st: st[0] == 3, "3 current")
        since = d.mark()
        d.signal(signal.SIGTERM)
        m = d.wait_log(SHUTTING_DOWN, timeout=10, since=since)
        check(m.group(1) == "3", "connections counted in the shutdown line", "3", m.group(0))
        for i, s in enumerate(socks):
            got = harness.expect_eof(s, timeout=15, what="EOF on idle connection #%d after SIGTERM" % i)
            check_bytes("data before EOF", b"", got)
            s.close()
        rc = d.wait_exit(15)
        d.check_sanitizers()
        check(rc == 0, "exit status after SIGTERM", 0, rc)


@harness.case(timeout=90)
def sigterm_shutdown_timeout():
    """A client that never reads cannot hold the shutdown beyond shutdown_timeout."""
    payload = os.urandom(64 * MIB)
    with Daemon(config="shutdown_timeout = 1s\n") as d:
        d.start()
        s = d.connect()
        harness.fill_without_reading(s, payload, stall=1.0)
        t0 = time.monotonic()
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(20)
        d.check_sanitizers()
        check(rc == 0, "exit status when shutdown_timeout expires", 0, rc)
        print("exited %.2fs after SIGTERM (shutdown_timeout = 1s)" % (time.monotonic() - t0))
        s.close()


def _reloaded(d, since):
    return d.wait_log(r"^echod: configuration reloaded from %s$" % re.escape(d.config_path),
                      timeout=10, since=since)


@harness.case()
def sighup_good():
    """SIGHUP with a good file: new connections get the new settings; the
    listener and existing connections keep working."""
    with Daemon(config="transform = none\n") as d:
        d.start()
        old = d.connect()
        harness.echo(old, b"abc", what="echo before reload (transform = none)")
        d.write_config("# reloaded\ntransform = upper\n")
        since = d.mark()
        d.signal(signal.SIGHUP)
        _reloaded(d, since)
        new = d.connect()
        harness.echo(new, b"abc xyz 123", expect=b"ABC XYZ 123",
                     what="echo on a new connection after reload (transform = upper)")
        old.sendall(b"def")
        got = harness.recv_exact(old, 3, what="echo on the connection opened before the reload")
        check(got in (b"def", b"DEF"), "the old connection is still served", "def (or DEF)", got)
        check(not d.find_log(r"reload failed|:\d+: ", since), "no error logged on a good reload",
              "no error", d.log()[since:])
        for s in (old, new):
            s.close()
        d.stop()


@harness.case()
def sighup_bad():
    """SIGHUP with a bad file: the error is logged as FILE:LINE:, echod keeps
    running with the old settings (none of the bad file applied); a later
    good file is loaded."""
    with Daemon(config="transform = upper\n") as d:
        d.start()
        s = d.connect()
        harness.echo(s, b"abc", expect=b"ABC", what="echo before reload (transform = upper)")
        s.close()
        # Line 1 is valid, line 3 is not: nothing of the file may apply.
        d.write_config("transform = none\n# a comment\nno_such_key = 1\n")
        since = _hup(d, expect_ok=False)
        d.wait_log(r"^echod: %s:3: " % re.escape(d.config_path), timeout=10, since=since)
        time.sleep(0.2)
        d.check_alive("echod keeps running after a bad reload")
        s = d.connect()
        harness.echo(s, b"abc", expect=b"ABC", what="echo after a failed reload (still transform = upper)")
        s.close()
        # A bad value, then a missing file: same.
        d.write_config("transform = sideways\n")
        since = _hup(d, expect_ok=False)
        d.wait_log(r"^echod: %s:1: " % re.escape(d.config_path), timeout=10, since=since)
        os.unlink(d.config_path)
        since = _hup(d, expect_ok=False)
        check(d.find_log(re.escape(d.config_path), since), "the missing file is named in the log",
              d.config_path, d.log()[since:])
        s = d.connect()
        harness.echo(s, b"abc", expect=b"ABC", what="echo after reloads that failed")
        s.close()
        # Recovery: a good file is applied.
        d.write_config("transform = none\n")
        since = d.mark()
        d.signal(signal.SIGHUP)
        _reloaded(d, since)
        s = d.connect()
        harness.echo(s, b"abc", what="echo after a good reload (transform = none)")
        s.close()
        d.stop()


@harness.case()
def sigusr1_stats():
    """SIGUSR1 logs `stats: C current, T total connections, B bytes echoed,
    W accept waits, D datagrams; refused: REASON N, ...; dropped: REASON N, ...`
    with every reason of the contract, also at zero."""
    with Daemon() as d:
        d.start()
        st, datagrams, reasons = d.full_stats()
        check(st == (0, 0, 0, 0) and datagrams == 0, "stats at start", (0, 0, 0, 0), st)
        want = ["acl", "per_source", "lifetime", "proxy", "udp_loop", "udp_martian", "udp_acl",
                "udp_rate"]
        check(list(reasons) == want and not any(reasons.values()),
              "refusal and drop reasons in the stats line", dict.fromkeys(want, 0), reasons)
        a, b = d.connect(), d.connect()
        harness.echo(a, b"0123456789")
        harness.echo(b, b"abcde")
        big = d.connect()
        harness.echo(big, os.urandom(3 * MIB + 1))
        big.close()
        b.close()
        st = d.wait_stats(lambda st: st[0] == 1, "1 current after two of three closed")
        expect = (1, 3, 10 + 5 + 3 * MIB + 1, 0)
        check(st == expect, "stats (current, total, bytes echoed, accept waits)", expect, st)
        d.check_alive("echod keeps running after SIGUSR1")
        harness.echo(a, b"!")
        a.close()
        d.stop()


@harness.case()
def quiet_at_info():
    """Per-connection events are logged at debug only: at the default level
    connections, resets and closes log nothing; at debug they do."""
    for level, want_lines in (("info", False), ("debug", True)):
        with Daemon(log_level=level) as d:
            d.start()
            since = d.mark()
            for i in range(10):
                s = d.connect()
                harness.echo(s, b"x" * 100)
                if i % 2:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
            d.wait_stats(lambda st: st[0] == 0 and st[1] == 10, "10 connections come and gone")
            lines = [line for line in d.log()[since:] if not line.startswith("echod: stats:")]
            if want_lines:
                check(lines, "per-connection lines at log_level = debug", "some lines", "none")
            else:
                check(not lines, "nothing logged per connection at log_level = info", "no lines",
                      lines)
            d.stop()


@harness.case()
def quiet_at_warning():
    """log_level = warning: a normal start, run and SIGTERM log nothing at all."""
    with Daemon(config="log_level = warning\n") as d:
        d.start(ready=False)
        time.sleep(1.0)
        d.check_alive("echod runs with log_level = warning")
        d.signal(signal.SIGTERM)
        rc = d.wait_exit(15)
        d.check_sanitizers()
        check(rc == 0, "exit status after SIGTERM", 0, rc)
        check(d.log() == [], "log at log_level = warning", "nothing", d.log())


def _hup(d, expect_ok=True):
    since = d.mark()
    d.signal(signal.SIGHUP)
    if expect_ok:
        _reloaded(d, since)
    else:
        d.wait_log(r"^echod: reload failed, keeping the current configuration$", timeout=10, since=since)
    return since


@harness.case()
def sighup_listen():
    """SIGHUP applies the file's `listen` list to listeners echod opened:
    new addresses open, kept ones stay (same port), dropped ones close while
    their connections go on; an address that cannot be opened fails the
    whole reload."""
    with Daemon(listen=None, config="listen = 127.0.0.1:0\n") as d:
        d.start()
        tcp = d.listener("tcp")
        unix_path = os.path.join(d.tmpdir, "s")
        old = d.connect()
        harness.echo(old, b"before", what="echo before the reloads")

        d.write_config("listen = 127.0.0.1:0\nlisten = unix:%s\n" % unix_path)
        since = _hup(d)
        d.wait_log(r"^echod: listening on unix:%s \(unix\)$" % re.escape(unix_path), since=since)
        check(not d.find_log(r"listening on 127\.0\.0\.1:", since),
              "the kept TCP listener is not reopened", "no new TCP listening line", d.log()[since:])
        s = harness.connect(tcp)
        harness.echo(s, b"tcp kept", what="echo on the kept TCP listener (same port)")
        s.close()
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.settimeout(10)
        u.connect(unix_path)
        harness.echo(u, b"unix added", what="echo on the added Unix listener")
        u.close()

        d.write_config("listen = unix:%s\n" % unix_path)
        since = _hup(d)
        try:
            s = harness.connect(tcp, timeout=5)
        except OSError:
            pass
        else:
            s.close()
            fail("the dropped TCP listener is closed", "connection refused", "connected")
        harness.echo(old, b"still served", what="echo on a connection of the dropped listener")

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            d.write_config("listen = unix:%s\nlisten = 127.0.0.1:%d\n" % (unix_path, busy.getsockname()[1]))
            _hup(d, expect_ok=False)
        d.check_alive("echod keeps running when a reload cannot open an address")
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.settimeout(10)
        u.connect(unix_path)
        harness.echo(u, b"unix still", what="echo on the Unix listener after the failed reload")
        u.close()
        old.close()
        d.stop()


@harness.case()
def sighup_keeps_command_line_listen():
    """With -l on the command line, a reload does not take the file's listen list."""
    with Daemon(listen=["127.0.0.1:0"], config="") as d:
        d.start()
        tcp = d.listener("tcp")
        unix_path = os.path.join(d.tmpdir, "s")
        d.write_config("listen = unix:%s\ntransform = upper\n" % unix_path)
        since = _hup(d)
        check(not d.find_log(r"listening on", since), "listeners after a reload with -l",
              "unchanged (no listening lines)", d.log()[since:])
        check(not os.path.exists(unix_path), "the file's Unix socket is not opened", "no socket file",
              unix_path)
        s = harness.connect(tcp)
        harness.echo(s, b"abc", expect=b"ABC", what="echo on the -l listener with the reloaded transform")
        s.close()
        d.stop()


if __name__ == "__main__":
    harness.main()
