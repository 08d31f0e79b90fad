#!/usr/bin/env python3
"""The metrics endpoint: `metrics = ADDR` serves GET /metrics in the
Prometheus text format from the daemon's own loop; other requests get 404
or 400, oversized and slow ones are closed, scrapers are capped and never
count as connections, reload moves the endpoint, SIGTERM ignores it."""

import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import harness
from harness import Daemon, check, check_equal, fail

SERVING = r"^echod: serving metrics on (\S+) \((tcp|unix)\)$"

FAMILIES = {
    "echod_connections": "gauge",
    "echod_connections_total": "counter",
    "echod_bytes_echoed_total": "counter",
    "echod_accept_waits_total": "counter",
    "echod_refused_total": "counter",
    "echod_udp_datagrams_total": "counter",
    "echod_udp_dropped_total": "counter",
    "echod_build_info": "gauge",
    "echod_start_time_seconds": "gauge",
}
TCP_REASONS = ["acl", "per_source", "lifetime", "proxy"]
UDP_REASONS = ["udp_loop", "udp_martian", "udp_acl", "udp_rate"]

GET = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n"
DEADLINE = 3.0  # METRICS_DEADLINE_MS


def start(config="metrics = 127.0.0.1:0\n", **kw):
    """Starts echod; returns (daemon, metrics Listener from its log)."""
    d = Daemon(config=config, **kw)
    d.start()
    m = d.wait_log(SERVING, timeout=5)
    return d, harness.Listener(m.group(1), m.group(2))


def read_all(sock, timeout=10, what="the response"):
    """Everything until EOF; a reset or timeout fails."""
    return harness.expect_eof(sock, timeout=timeout, what=what)


def read_all_threaded(sock, timeout):
    """read_all() for threads: harness.recv_some() shares one buffer, so
    two threads reading at once would mix their data."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("EOF within %ss" % timeout, "EOF", "still open after %d bytes" % len(buf))
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            return bytes(buf)
        buf += chunk


def request(ml, data=GET, timeout=10):
    """Sends data on a new connection and reads the whole response:
    (status, headers dict, body bytes)."""
    with harness.connect(ml, timeout=timeout) as s:
        s.sendall(data)
        raw = read_all(s, timeout)
    return parse_response(raw)


def parse_response(raw):
    head, sep, body = raw.partition(b"\r\n\r\n")
    check(sep, "an HTTP response head ending in an empty line", "CRLF CRLF", raw)
    lines = head.decode("ascii").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3}) ", lines[0])
    check(m, "an HTTP status line", "HTTP/1.x NNN ...", lines[0])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    check_equal("Content-Length against the body", str(len(body)), headers.get("content-length"))
    return int(m.group(1)), headers, body


def scrape(ml):
    status, headers, body = request(ml)
    check_equal("status of GET /metrics", 200, status)
    check(headers.get("content-type", "").startswith("text/plain; version=0.0.4"),
          "Content-Type of the metrics", "text/plain; version=0.0.4...", headers)
    return body.decode("utf-8")


def parse_exposition(text):
    """{family: type}, {(name, labels): value}; every sample must belong to a
    family announced with HELP and TYPE before it."""
    types, helps, samples = {}, set(), {}
    check(text.endswith("\n"), "the exposition ends with a newline", "\\n", text[-20:])
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helps.add(line.split(" ")[2])
            continue
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            types[name] = typ
            continue
        m = re.match(r'^([a-z_]+)(?:\{(\w+)="([^"]*)"\})? (\S+)$', line)
        check(m, "a sample line", "NAME{LABEL=\"VALUE\"} NUMBER", line)
        name = m.group(1)
        check(name in types and name in helps, "HELP and TYPE before the samples of %s" % name,
              "both", (name in helps, types.get(name)))
        labels = (m.group(2), m.group(3)) if m.group(2) else None
        key = (name, labels)
        check(key not in samples, "each series once", "one %s" % (key,), "twice")
        samples[key] = float(m.group(4))
    return types, samples


def check_families(types, samples):
    check_equal("the families and their types", FAMILIES, types)
    for r in TCP_REASONS:
        check(("echod_refused_total", ("reason", r)) in samples,
              "refused_total with reason %s, also at zero" % r, "a sample", sorted(samples))
    for r in UDP_REASONS:
        check(("echod_udp_dropped_total", ("reason", r)) in samples,
              "udp_dropped_total with reason %s, also at zero" % r, "a sample", sorted(samples))
    refused = [k[1][1] for k in samples if k[0] == "echod_refused_total"]
    dropped = [k[1][1] for k in samples if k[0] == "echod_udp_dropped_total"]
    check_equal("refusal reasons", TCP_REASONS, refused)
    check_equal("UDP drop reasons", UDP_REASONS, dropped)
    version = os.environ.get("ECHOD_VERSION")
    info = [k for k in samples if k[0] == "echod_build_info"]
    check(len(info) == 1 and info[0][1][0] == "version" and samples[info[0]] == 1,
          "build_info{version=...} 1", "one sample, value 1", info)
    if version:
        check_equal("build_info's version", version, info[0][1][1])


def echo_some(d, n=3):
    """n exact echoes, each on its own connection; returns bytes echoed."""
    total = 0
    for i in range(n):
        with d.connect() as s:
            data = os.urandom(1000 + i)
            harness.echo(s, data, what="echo #%d" % i)
            total += len(data)
    return total


@harness.case()
def families_and_values():
    """Every family of the contract, with HELP and TYPE, every reason at
    zero, and values equal to the SIGUSR1 stats after echo and UDP traffic;
    scrapes are not connections."""
    d, ml = start(listen=("127.0.0.1:0", "udp:127.0.0.1:0"))
    with d:
        t0 = time.time()
        types, samples = parse_exposition(scrape(ml))
        check_families(types, samples)
        for k, v in samples.items():
            if k[0] not in ("echod_build_info", "echod_start_time_seconds"):
                check_equal("%s at start" % (k,), 0, v)
        start_time = samples[("echod_start_time_seconds", None)]
        check(t0 - 60 < start_time <= t0 + 1, "start_time_seconds is the Unix time of the start",
              "about %.0f" % t0, start_time)

        nbytes = echo_some(d, 3)
        keep = d.connect()
        harness.echo(keep, b"open one")
        nbytes += len(b"open one")
        udp = d.listener("udp")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            for i in range(5):
                u.sendto(b"dgram %d" % i, udp.address)
                check_equal("UDP echo", b"dgram %d" % i, u.recv(100))
                nbytes += len(b"dgram %d" % i)
        d.wait_stats(lambda st: st[0] == 1, "1 current connection")
        (cur, total, byts, waits), datagrams, reasons = d.full_stats()
        for _ in range(3):  # scrapes change nothing
            types, samples = parse_exposition(scrape(ml))
        check_families(types, samples)
        got = {
            "current": samples[("echod_connections", None)],
            "total": samples[("echod_connections_total", None)],
            "bytes": samples[("echod_bytes_echoed_total", None)],
            "accept_waits": samples[("echod_accept_waits_total", None)],
            "datagrams": samples[("echod_udp_datagrams_total", None)],
        }
        for r in TCP_REASONS:
            got[r] = samples[("echod_refused_total", ("reason", r))]
        for r in UDP_REASONS:
            got[r] = samples[("echod_udp_dropped_total", ("reason", r))]
        want = {"current": cur, "total": total, "bytes": byts, "accept_waits": waits,
                "datagrams": datagrams}
        want.update(reasons)
        check_equal("the metrics against the SIGUSR1 stats", want, got)
        check_equal("connections counted (scrapes are not connections)", 4, total)
        check_equal("bytes echoed", nbytes, byts)
        check_equal("start time is stable", start_time,
                    samples[("echod_start_time_seconds", None)])
        harness.echo(keep, b"still")
        keep.close()
        d.stop()


@harness.case()
def promtool():
    """`promtool check metrics` accepts the body as served."""
    tool = shutil.which("promtool")
    d, ml = start()
    with d:
        echo_some(d, 1)
        body = scrape(ml)
        if not tool:
            raise harness.Skip("promtool is not installed (Debian package prometheus)")
        p = subprocess.run([tool, "check", "metrics"], input=body.encode(), capture_output=True,
                           timeout=60)
        out = (p.stdout + p.stderr).decode(errors="replace")
        print("promtool check metrics: exit %d, output: %r" % (p.returncode, out))
        check(p.returncode == 0 and not out.strip(), "promtool check metrics",
              "exit 0, no complaint", "exit %d: %s" % (p.returncode, out))
        d.stop()


@harness.case()
def not_found():
    """A well-formed request for any other path gets 404; / and HEAD too."""
    d, ml = start()
    with d:
        for req in (b"GET /other HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n",
                    b"GET /metrics/x HTTP/1.0\r\n\r\n", b"HEAD /metrics HTTP/1.1\r\n\r\n"):
            status, _, body = request(ml, req)
            check_equal("status for %r" % req, 404, status)
        check_equal("the metrics are still served", 200, request(ml)[0])
        d.stop()


@harness.case()
def bad_request():
    """Garbage, and requests echod does not speak, get 400 and a clean close
    (even while the client goes on sending)."""
    d, ml = start()
    with d:
        for req in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),
                    b"hello\r\n\r\n", b"GET /metrics HTTP/2.0\r\n\r\n", b"GET /metrics\r\n\r\n",
                    b"GET  /metrics HTTP/1.1\r\n\r\n"):
            status, _, _ = request(ml, req)
            check_equal("status for %r" % req[:30], 400, status)
        # A client that keeps sending after its garbage: the 400 still
        # arrives whole, then EOF, no reset.
        with harness.connect(ml) as s:
            s.sendall(b"BAD REQUEST\x00\r\n" + b"x" * 20000)
            status, _, _ = parse_response(read_all(s))
            check_equal("status for garbage followed by more", 400, status)
        check_equal("the metrics are still served", 200, request(ml)[0])
        d.stop()


@harness.case()
def oversized_request():
    """A request head over 2048 bytes gets 400 and is closed; so is one
    that never ends, whatever the client sends."""
    d, ml = start()
    with d:
        big = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 2100 + b"\r\n\r\n"
        status, _, _ = request(ml, big)
        check_equal("status for a 2 KiB+ request head", 400, status)
        just = b"GET /metrics HTTP/1.1\r\nX-Pad: " + b"a" * 1900 + b"\r\n\r\n"
        check(len(just) < 2048, "test setup", "< 2048", len(just))
        check_equal("status for a head just under the bound", 200, request(ml, just)[0])
        # A flood: the daemon reads and drops it, answers, then closes.
        with harness.connect(ml) as s:
            s.settimeout(10)
            t0 = time.monotonic()
            raw = b""
            try:
                for _ in range(64):
                    s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"b" * 65536)
            except OSError:
                pass  # closed under our feet at the deadline: fine
            try:
                raw = read_all(s, timeout=DEADLINE + 5)
            except harness.Failure:
                raise
            check(time.monotonic() - t0 < DEADLINE + 5, "a flooding client is closed",
                  "within the deadline", time.monotonic() - t0)
            if raw:
                check_equal("status for a flood", 400, parse_response(raw)[0])
        d.check_alive()
        check_equal("the metrics are still served", 200, request(ml)[0])
        d.stop()


@harness.case()
def slow_scraper():
    """A scraper that sends half a request and waits is closed after about
    3 s; echo clients are served exactly meanwhile."""
    d, ml = start()
    with d:
        slow = harness.connect(ml)
        slow.sendall(GET[:20])
        t0 = time.monotonic()
        clients = [d.connect() for _ in range(4)]
        n = 0
        while time.monotonic() - t0 < DEADLINE - 0.5:
            for i, c in enumerate(clients):
                data = os.urandom(4096 + n)
                harness.echo(c, data, what="echo #%d while a scraper stalls" % n)
                n += 1
            time.sleep(0.05)
        rest = read_all(slow, timeout=DEADLINE + 2, what="EOF to the slow scraper")
        took = time.monotonic() - t0
        print("slow scraper closed after %.2fs; %d echoes meanwhile" % (took, n))
        check_equal("what the slow scraper got", b"", rest)
        check(DEADLINE - 0.5 <= took <= DEADLINE + 1.5, "the slow scraper is closed at the deadline",
              "about %.0fs" % DEADLINE, "%.2fs" % took)
        slow.close()
        for c in clients:
            harness.echo(c, b"after")
            c.close()
        check_equal("the metrics are still served", 200, request(ml)[0])
        d.stop()


@harness.case()
def scraper_cap():
    """At most 8 scrapers are served at once: with 8 slow ones holding
    their slots, a 9th waits (in the backlog) and is answered once they
    time out, while echo traffic goes on and nothing counts them as
    connections."""
    d, ml = start()
    with d:
        # Half a request each: a scraper that sends nothing may not even
        # be accepted yet (TCP_DEFER_ACCEPT).
        silent = [harness.connect(ml) for _ in range(8)]
        for s in silent:
            s.sendall(GET[:10])
        time.sleep(0.3)
        t0 = time.monotonic()
        ninth = harness.connect(ml)
        ninth.sendall(GET)
        harness.expect_nothing(ninth, 1.0, "a 9th scraper while 8 hold the table")
        with d.connect() as c:
            harness.echo(c, b"echo while the metrics table is full")
        raw = read_all(ninth, timeout=DEADLINE + 5)
        took = time.monotonic() - t0
        check_equal("the 9th scraper's status", 200, parse_response(raw)[0])
        check(took >= DEADLINE - 1.0, "the 9th was answered only once a slot freed", ">= ~2 s",
              "%.2fs" % took)
        for s in silent:
            check_equal("a slow scraper at its deadline", b"", read_all(s, timeout=5))
            s.close()
        ninth.close()
        st = d.stats()
        check_equal("echo connections (scrapers never count)", 1, st[1])
        d.stop()


@harness.case()
def many_scrapers():
    """50 concurrent scrapers, one in five slow: each gets a full 200 or a
    clean close, echod
    survives, echo traffic is unaffected meanwhile."""
    d, ml = start(config="metrics = 127.0.0.1:0\nbacklog = 128\n")
    with d:
        results = [None] * 50
        go = threading.Event()

        def one(i):
            go.wait(10)
            try:
                with harness.connect(ml, timeout=20) as s:
                    if i % 5 == 0:  # a slow one, holding its slot a while
                        s.sendall(GET[:16])
                        time.sleep(0.5)
                        s.sendall(GET[16:])
                    else:
                        s.sendall(GET)
                    raw = read_all_threaded(s, timeout=20)
                results[i] = ("ok", parse_response(raw)[0]) if raw else ("closed", None)
            except harness.Failure as e:
                results[i] = ("fail", str(e))
            except OSError as e:
                results[i] = ("error", repr(e))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        clients = [d.connect() for _ in range(4)]
        go.set()
        n = 0
        while any(t.is_alive() for t in threads) and n < 2000:
            for c in clients:
                harness.echo(c, os.urandom(2000), what="echo #%d under a scrape storm" % n)
                n += 1
        for t in threads:
            t.join(30)
        kinds = {}
        for r in results:
            kinds[r[0] if r else None] = kinds.get(r[0] if r else None, 0) + 1
        print("50 scrapers: %s; %d echoes meanwhile" % (kinds, n))
        bad = [r for r in results if not r or r[0] not in ("ok", "closed") or r == ("ok", 400)]
        check(not bad, "every scraper gets a full response or a clean close", "200s or EOF", bad)
        check(kinds.get("ok", 0) >= 40, "most of the scrapers are answered", ">= 40 of 50", kinds)
        for c in clients:
            harness.echo(c, b"after the storm")
            c.close()
        d.check_alive()
        check_equal("the metrics after the storm", 200, request(ml)[0])
        check_equal("echo connections (scrapers never count)", 4, d.stats()[1])
        d.stop()


@harness.case()
def unix_address():
    """`metrics = unix:PATH` serves over a Unix socket, removed at exit."""
    d = Daemon(config="")
    with d:
        path = os.path.join(d.tmpdir, "metrics.sock")
        d.write_config("metrics = unix:%s\n" % path)
        d.start()
        ml = harness.Listener(d.wait_log(SERVING, timeout=5).group(1), "unix")
        check_equal("the metrics listener", "unix:" + path, ml.text)
        types, samples = parse_exposition(scrape(ml))
        check_families(types, samples)
        d.stop()
        check(not os.path.exists(path), "the socket file is removed at exit", "gone", "still there")


@harness.case()
def sighup_address():
    """SIGHUP moves the endpoint: the new address serves, the old one is
    closed; an unchanged address stays open (same port); an address that
    cannot be opened fails the whole reload, `listen` included."""
    echo = "listen = 127.0.0.1:0\n"
    d, ml = start(config=echo + "metrics = 127.0.0.1:0\n", listen=None)
    with d:
        harness.echo(d.connect(), b"x")
        since = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: configuration reloaded", since=since)
        check(not d.find_log(SERVING, since), "an unchanged metrics address is kept",
              "no new `serving metrics` line", d.log()[since:])
        check_equal("the kept endpoint", 200, request(ml)[0])

        path = os.path.join(d.tmpdir, "m.sock")
        d.write_config(echo + "metrics = unix:%s\n" % path)
        since = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: configuration reloaded", since=since)
        new = harness.Listener(d.wait_log(SERVING, since=since).group(1), "unix")
        check_equal("the new endpoint", "unix:" + path, new.text)
        check_equal("scrape on the new address", 200, request(new)[0])
        try:
            harness.connect(ml, timeout=3).close()
        except OSError:
            pass
        else:
            fail("the old metrics address is closed", "connection refused", "connected")

        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen(1)
            unix2 = os.path.join(d.tmpdir, "echo2.sock")
            d.write_config(echo + "listen = unix:%s\nmetrics = 127.0.0.1:%d\n" % (
                unix2, busy.getsockname()[1]))
            since = d.mark()
            d.signal(signal.SIGHUP)
            d.wait_log(r"^echod: reload failed, keeping the current configuration$", since=since)
        check(not d.find_log(r"listening on unix:", since), "a failed reload opens no listen address",
              "no new listener", d.log()[since:])
        check_equal("the endpoint after a failed reload", 200, request(new)[0])

        d.write_config(echo)
        since = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: configuration reloaded", since=since)
        check(not os.path.exists(path), "metrics turned off: its socket file is removed", "gone",
              "still there")
        with d.connect() as c:
            harness.echo(c, b"echo goes on")
        d.stop()


@harness.case()
def sigterm_with_scraper():
    """SIGTERM with a scraper connected (half a request sent): echod exits 0
    at once, it does not wait for the scraper."""
    d, ml = start()
    with d:
        s = harness.connect(ml)
        s.sendall(GET[:10])
        time.sleep(0.2)
        t0 = time.monotonic()
        d.stop()
        took = time.monotonic() - t0
        check(took < DEADLINE - 1, "exit without waiting for the scraper", "< 2 s", "%.2fs" % took)
        check_equal("the scraper at exit", b"", read_all(s, timeout=5))
        s.close()


if __name__ == "__main__":
    harness.main()
