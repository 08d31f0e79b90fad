#!/usr/bin/env python3
"""Service manager notifications: a real NOTIFY_SOCKET (an AF_UNIX datagram
socket bound here) receives echod's READY=1, STATUS=, STOPPING=1,
RELOADING=1 + MONOTONIC_USEC= and WATCHDOG=1 messages; each test checks
the messages, their order and their sender.

Usage: test_notify.py CASE
"""

import re
import signal
import socket

import sdtest
from sdtest import check

STATUS_RX = r"STATUS=(\d+) connections?, (\d+) served, (\d+) bytes? echoed"


def start(notify, args=(), env=None, fds=None, config="", **kw):
    """echod on a passed loopback socket (or its own -l 127.0.0.1:0)."""
    env = dict(env or {})
    env.update(notify.env())
    if fds is None:
        sock = sdtest.listening_socket("127.0.0.1")
        fds = [sock]
    proc = sdtest.start_echod(list(args), env=env, fds=fds, config=config, **kw)
    addr = fds[0].getsockname()[:2] if fds else None
    return proc, addr


def check_senders(notify, proc):
    """Every message came from echod itself, none from another process."""
    for pid, fields, text in notify.messages:
        if pid is not None:
            check(pid == proc.pid, "notification %r came from pid %d, not echod's %d"
                  % (text, pid, proc.pid))


def check_fields(notify):
    """Each field is NAME=VALUE with an upper-case name, no blank lines."""
    for _, fields, text in notify.messages:
        for f in fields:
            check(re.fullmatch(r"[A-Z_]+=.*", f), "malformed notification field %r in %r"
                  % (f, text))


def indexes(notify, field_rx):
    rx = re.compile(field_rx)
    return [i for i, f in notify.all_fields() if rx.fullmatch(f)]


def finish(notify, proc):
    """SIGTERM; STOPPING=1 comes, echod exits 0; nothing after STOPPING
    claims readiness again."""
    proc.signal(signal.SIGTERM)
    stop_i, _ = notify.wait_for(r"STOPPING=1", proc=proc)
    code = proc.wait()
    check(code == 0, "echod exited %s after SIGTERM, not 0; stderr:\n%s"
          % (code, proc.stderr_text()))
    notify.drain()
    check(not [i for i in indexes(notify, r"READY=1") if i > stop_i],
          "READY=1 after STOPPING=1: %r" % [m[2] for m in notify.messages])
    check(len(indexes(notify, r"STOPPING=1")) == 1,
          "STOPPING=1 sent more than once: %r" % [m[2] for m in notify.messages])
    check_senders(notify, proc)
    check_fields(notify)
    return stop_i


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_ready():
    """READY=1 once every passed socket is in the loop: a client that
    connects right after it is served."""
    notify = sdtest.Notify()
    socks = [sdtest.listening_socket("127.0.0.1"),
             sdtest.listening_socket("127.0.0.1", socket.SOCK_DGRAM)]
    proc, addr = start(notify, fds=socks)
    ready_i, _ = notify.wait_for(r"READY=1", proc=proc)
    # Right after READY=1, without waiting for anything else.
    sdtest.check_tcp_echo(addr, sdtest.payload(200000))
    sdtest.check_udp_echo(socks[1].getsockname()[:2])
    check(not [i for i in indexes(notify, r"STOPPING=1|RELOADING=1") if i < ready_i],
          "STOPPING=1 or RELOADING=1 before the first READY=1: %r"
          % [m[2] for m in notify.messages])
    proc.wait_stderr(r"echod: ready$")
    found = proc.wait_stderr(sdtest.LISTENING_RX, count=2)
    check(len(found) == 2, "expected 2 'listening on' lines")
    finish(notify, proc)
    check(len(indexes(notify, r"READY=1")) == 1,
          "READY=1 sent more than once without a reload: %r" % [m[2] for m in notify.messages])
    check(not indexes(notify, r"WATCHDOG=1"),
          "WATCHDOG=1 sent although WATCHDOG_USEC was not set")


@sdtest.case("ready-own", timeout=180)
@sdtest.needs_systemd
def case_ready_own():
    """The same when echod opens its listener itself (-l 127.0.0.1:0)."""
    notify = sdtest.Notify()
    proc, _ = start(notify, args=["-l", "127.0.0.1:0"], fds=[])
    notify.wait_for(r"READY=1", proc=proc)
    found = proc.wait_stderr(sdtest.LISTENING_RX)
    addr = sdtest.parse_addr(found[0].group(1))
    sdtest.check_tcp_echo(addr)
    finish(notify, proc)


@sdtest.case("status-refusals", timeout=180)
@sdtest.needs_systemd
def case_status_refusals():
    """Refusals join STATUS=, by reason, once there are any: what an
    operator sees in `systemctl status`."""
    notify = sdtest.Notify()
    proc, addr = start(notify, config="max_connections_per_source = 1\n")
    notify.wait_for(r"READY=1", proc=proc)
    with socket.create_connection(addr, timeout=sdtest.TIMEOUT) as first:
        first.sendall(b"x")
        check(first.recv(1) == b"x", "the first connection is served")
        for _ in range(2):
            with socket.create_connection(addr, timeout=sdtest.TIMEOUT) as extra:
                extra.settimeout(sdtest.TIMEOUT)
                check(extra.recv(1) == b"", "a connection over the per-source cap is closed")
        want = r"STATUS=1 connections?, 1 served, 1 bytes? echoed; refused: per_source 2"
        notify.wait_for(want, what=want, proc=proc)
    finish(notify, proc)


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_status():
    """STATUS= tells, in words, the open connections, those served and the
    bytes echoed, and follows them."""
    notify = sdtest.Notify()
    proc, addr = start(notify)
    notify.wait_for(r"READY=1", proc=proc)
    first = [f for _, f in notify.all_fields() if f.startswith("STATUS=")]
    if first:
        check(re.fullmatch(STATUS_RX, first[0]), "STATUS=%r is not 'C connections, T served, "
              "B bytes echoed'" % first[0])
    # One client that stays connected after its echo.
    data = b"status check \x00" * 100
    with socket.create_connection(addr, timeout=sdtest.TIMEOUT) as c:
        c.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = c.recv(65536)
            check(chunk, "echod closed the connection early")
            got += chunk
        check(got == data, "echo mismatch")
        _, msg = notify.wait_for(r"STATUS=1 connections?, \d+ served, \d+ bytes? echoed",
                                 what="STATUS= with 1 open connection", proc=proc)
        status = [f for f in msg[1] if f.startswith("STATUS=")][0]
        m = re.fullmatch(STATUS_RX, status)
        check(m and int(m.group(2)) >= 1, "STATUS=%r: served should count the open one" % status)
    # Closed: 0 open, 1 served, every byte counted.
    want = r"STATUS=0 connections?, 1 served, %d bytes? echoed" % len(data)
    notify.wait_for(want, what=want, proc=proc)
    statuses = [f for _, f in notify.all_fields() if f.startswith("STATUS=")]
    for s in statuses:
        check(re.fullmatch(STATUS_RX, s), "malformed %r" % s)
    # Only on change: never the same text twice in a row.
    for a, b in zip(statuses, statuses[1:]):
        check(a != b, "STATUS= repeated without a change: %r" % a)
    finish(notify, proc)


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_stop():
    """SIGTERM: STOPPING=1 after READY=1, then exit 0."""
    notify = sdtest.Notify()
    proc, addr = start(notify)
    ready_i, _ = notify.wait_for(r"READY=1", proc=proc)
    sdtest.check_tcp_echo(addr)
    stop_i = finish(notify, proc)
    check(ready_i < stop_i, "STOPPING=1 before READY=1")
    proc.wait_stderr(r"echod: shutting down \(\d+ connections? open\)")


@sdtest.case("stop-sigint", timeout=180)
@sdtest.needs_systemd
def case_stop_sigint():
    notify = sdtest.Notify()
    proc, _ = start(notify)
    notify.wait_for(r"READY=1", proc=proc)
    proc.signal(signal.SIGINT)
    notify.wait_for(r"STOPPING=1", proc=proc)
    code = proc.wait()
    check(code == 0, "echod exited %s after SIGINT, not 0" % code)
    check_senders(notify, proc)


def reload_round(notify, proc):
    """SIGHUP; returns after RELOADING=1 (with MONOTONIC_USEC= in the same
    message, taken after the signal) and the READY=1 that follows it."""
    before = sdtest.monotonic_usec()
    proc.signal(signal.SIGHUP)
    rel_i, msg = notify.wait_for(r"RELOADING=1", proc=proc)
    after = sdtest.monotonic_usec()
    mono = [f for f in msg[1] if f.startswith("MONOTONIC_USEC=")]
    check(mono, "RELOADING=1 came without MONOTONIC_USEC= in the same message: %r" % msg[2])
    m = re.fullmatch(r"MONOTONIC_USEC=(\d+)", mono[0])
    check(m, "malformed %r" % mono[0])
    usec = int(m.group(1))
    check(before <= usec <= after, "MONOTONIC_USEC=%d is not CLOCK_MONOTONIC between the "
          "signal (%d) and the message (%d)" % (usec, before, after))
    check("READY=1" not in msg[1], "READY=1 in the same message as RELOADING=1")
    ready_i, _ = notify.wait_for(r"READY=1", what="READY=1 after RELOADING=1", proc=proc)
    check(ready_i > rel_i, "READY=1 before RELOADING=1")
    return rel_i, ready_i


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_reload():
    """SIGHUP with a good new file: RELOADING=1 then READY=1, and new
    connections get the new settings."""
    notify = sdtest.Notify()
    proc, addr = start(notify, config="transform = none\n")
    notify.wait_for(r"READY=1", proc=proc)
    sdtest.check_tcp_echo(addr, b"lower case")
    sdtest.write_config("transform = upper\n")  # the file echod was started with
    reload_round(notify, proc)
    proc.wait_stderr(r"echod: configuration reloaded from \S+")
    got = sdtest.tcp_echo(addr, b"lower case \x00 z")
    check(got == b"LOWER CASE \x00 Z", "after reload with transform = upper, echoed %r" % got)
    # A second reload works the same way.
    sdtest.write_config("transform = none\n")
    reload_round(notify, proc)
    sdtest.check_tcp_echo(addr, b"lower again")
    finish(notify, proc)


@sdtest.case("reload-bad", timeout=180)
@sdtest.needs_systemd
def case_reload_bad():
    """SIGHUP with a bad file: RELOADING=1 then READY=1 all the same, the
    error logged, echod still serving with the old settings."""
    notify = sdtest.Notify()
    proc, addr = start(notify, config="transform = upper\n")
    notify.wait_for(r"READY=1", proc=proc)
    conf = sdtest.write_config("transform = sideways\n")
    reload_round(notify, proc)
    proc.wait_stderr(r"echod: %s:1: " % re.escape(conf))
    proc.wait_stderr(r"echod: reload failed, keeping the current configuration")
    check(proc.poll() is None, "echod exited after a bad reload")
    got = sdtest.tcp_echo(addr, b"still upper")
    check(got == b"STILL UPPER", "after a bad reload echoed %r, not the old transform" % got)
    finish(notify, proc)


@sdtest.case("reload-cli", timeout=180)
@sdtest.needs_systemd
def case_reload_cli():
    """Options on the command line keep their precedence over the file
    after a reload."""
    notify = sdtest.Notify()
    proc, addr = start(notify, args=["--transform=upper"], config="transform = none\n")
    notify.wait_for(r"READY=1", proc=proc)
    check(sdtest.tcp_echo(addr, b"abc") == b"ABC", "--transform=upper was not applied")
    sdtest.write_config("transform = none\nbuffer_size = 1K\n")
    reload_round(notify, proc)
    proc.wait_stderr(r"echod: configuration reloaded from \S+")
    got = sdtest.tcp_echo(addr, b"abc")
    check(got == b"ABC", "after a reload the file's transform = none overrode "
          "--transform=upper: echoed %r" % got)
    finish(notify, proc)


def watchdog(watchdog_pid):
    notify = sdtest.Notify()
    proc, addr = start(notify, env={"WATCHDOG_USEC": "200000"}, watchdog_pid=watchdog_pid)
    notify.wait_for(r"READY=1", proc=proc)
    # Several keep-alives in a row, while clients come and go.
    for i in range(4):
        notify.wait_for(r"WATCHDOG=1", what="WATCHDOG=1 number %d" % (i + 1), proc=proc)
        sdtest.check_tcp_echo(addr, b"tick %d" % i)
    finish(notify, proc)
    check(len(indexes(notify, r"WATCHDOG=1")) >= 4, "fewer than 4 WATCHDOG=1")


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_watchdog():
    """WATCHDOG_USEC=200000 without WATCHDOG_PID: repeated WATCHDOG=1."""
    watchdog(False)


@sdtest.case("watchdog-pid", timeout=180)
@sdtest.needs_systemd
def case_watchdog_pid():
    """WATCHDOG_USEC=200000 with WATCHDOG_PID naming echod: the same."""
    watchdog(True)


@sdtest.case(timeout=180)
def case_journal():
    """With JOURNAL_STREAM naming stderr, each line starts with its <PRIO>
    instead of 'echod: '; with JOURNAL_STREAM naming another file (it is
    inherited by children), lines stay plain."""
    proc = sdtest.start_echod(["-l", "127.0.0.1:0"], journal_stream=True)
    proc.wait_stderr(r"^<6>listening on 127\.0\.0\.1:\d+ \(tcp\)$")
    proc.wait_stderr(r"^<6>ready$")
    proc.signal(signal.SIGTERM)
    check(proc.wait() == 0, "echod did not exit 0 after SIGTERM")
    proc.wait_stderr(r"^<5>shutting down")
    bad = [line for line in proc.stderr_text().splitlines() if not re.match(r"<[3-7]>\S", line)]
    check(not bad, "lines without a <PRIO> prefix although stderr is the journal: %r" % bad)

    proc = sdtest.start_echod(["-l", "127.0.0.1:0"], env={"JOURNAL_STREAM": "1:1"})
    proc.wait_stderr(r"^echod: ready$")
    proc.signal(signal.SIGTERM)
    check(proc.wait() == 0, "echod did not exit 0 after SIGTERM")
    check(not re.search(r"^<\d>", proc.stderr_text(), re.M),
          "<PRIO> prefixes although JOURNAL_STREAM names another file:\n" + proc.stderr_text())


if __name__ == "__main__":
    sdtest.run_cases()
