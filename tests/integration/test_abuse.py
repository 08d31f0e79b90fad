#!/usr/bin/env python3
"""Abuse resistance: allow/deny, the per-source cap, max_connection_time,
the UDP filters (echo loops, forged sources), the UDP rate per source,
replies from the address a datagram was sent to, and refusal logs that a
flood cannot flood. Loopback has 16 M addresses (127.x.y.z): a client
bound to 127.0.0.N is source N."""

import os
import select
import signal
import socket
import struct
import time

import harness
from harness import Daemon, check, check_equal


def _from(src, listener, timeout=5):
    """A TCP client bound to source address src, connected to listener."""
    fam = socket.AF_INET6 if ":" in src else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    host = listener.address[0]
    if fam == socket.AF_INET6 and ":" not in host or host == "::" and fam == socket.AF_INET6:
        host = "::1"
    elif fam == socket.AF_INET and (":" in host or host == "0.0.0.0"):
        host = "127.0.0.1"
    s.connect((host, listener.port))
    return s


def _served(s, what):
    msg = b"hello from %s\n" % str(s.getsockname()[0]).encode()
    s.sendall(msg)
    harness.check_bytes(what, msg, harness.recv_exact(s, len(msg), timeout=5, what=what))


def _refused(s, what):
    """The connection is closed without a byte (EOF or reset)."""
    try:
        s.sendall(b"let me in\n")
    except OSError:
        return
    s.settimeout(5)
    try:
        got = s.recv(100)
    except ConnectionResetError:
        return
    except socket.timeout:
        harness.fail(what, "closed at once, no byte", "still open after 5 s")
    check_equal(what + ": bytes received", b"", got)


def _reasons(d):
    return d.full_stats()[2]


@harness.case()
def acl_deny_allow():
    """deny refuses a source, allow admits only its own; IPv4-mapped peers
    on a dual-stack socket match IPv4 entries; IPv6 ::1 by its own."""
    with Daemon(config="deny = 127.0.0.2\n") as d:
        d.start()
        _refused(_from("127.0.0.2", d.listener()), "127.0.0.2 with deny = 127.0.0.2")
        _served(_from("127.0.0.3", d.listener()), "127.0.0.3 with deny = 127.0.0.2")
        check_equal("acl refusals counted", 1, _reasons(d)["acl"])
        d.stop()
    conf = "allow = 127.0.0.0/30\nallow = ::1\ndeny = 127.0.0.1\n"
    listen = ["[::]:0"] if harness.have_ipv6_loopback() else ["0.0.0.0:0"]
    with Daemon(config=conf, listen=listen) as d:
        d.start()
        listener = d.listener()
        _refused(_from("127.0.0.1", listener), "127.0.0.1: allowed, but denied (deny wins)")
        _served(_from("127.0.0.2", listener), "127.0.0.2 in allow 127.0.0.0/30 (mapped on [::])")
        _refused(_from("127.0.0.9", listener), "127.0.0.9 outside every allow entry")
        if listen[0].startswith("["):
            _served(_from("::1", listener), "::1 in allow ::1")
        d.stop()
    with Daemon(config="allow = 10.0.0.0/8\n", listen=["[::1]:0"] if harness.have_ipv6_loopback()
                else ["127.0.0.1:0"]) as d:
        d.start()
        listener = d.listener()
        _refused(_from("::1" if listener.family == socket.AF_INET6 else "127.0.0.1", listener),
                 "a peer outside allow = 10.0.0.0/8")
        d.stop()


@harness.case()
def per_source_cap():
    """max_connections_per_source: the connection beyond the cap is closed
    at once, others are served, and below the cap it is admitted again."""
    with Daemon(config="max_connections_per_source = 3\n") as d:
        d.start()
        listener = d.listener()
        mine = [_from("127.0.0.2", listener) for _ in range(3)]
        for s in mine:
            _served(s, "one of 3 connections from 127.0.0.2")
        _refused(_from("127.0.0.2", listener), "a 4th connection from 127.0.0.2")
        other = [_from("127.0.0.3", listener) for _ in range(3)]
        for s in other:
            _served(s, "127.0.0.3 while 127.0.0.2 is at its cap")
        mine.pop().close()
        d.wait_stats(lambda st: st[0] == 5, "5 current after one closed")
        again = _from("127.0.0.2", listener)
        _served(again, "127.0.0.2 below its cap again")
        check_equal("per_source refusals counted", 1, _reasons(d)["per_source"])
        d.stop()


@harness.case()
def per_source_after_reload():
    """A reload that raises max_connections keeps per-source caps exact: a
    new source's first connection is never refused for others' sake."""
    conf = "max_connections = 10\nmax_connections_per_source = 2\n"
    with Daemon(config=conf) as d:
        d.start()
        since = d.mark()
        d.write_config("max_connections_per_source = 2\n")
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: configuration reloaded", since=since)
        held = []
        for i in range(40):
            s = _from("127.0.%d.%d" % (1 + i // 200, 10 + i % 200), d.listener())
            _served(s, "the first connection of source #%d" % i)
            held.append(s)
        check_equal("per_source refusals", 0, _reasons(d)["per_source"])
        d.stop()


@harness.case()
def max_connection_time():
    """max_connection_time: a connection open that long gets its pending
    echoes, then EOF; the lifetime counter counts it."""
    with Daemon(config="max_connection_time = 1s\n") as d:
        d.start()
        s = d.connect()
        _served(s, "echo before the deadline")
        t0 = time.monotonic()
        got = harness.expect_eof(s, timeout=10, what="EOF after max_connection_time")
        waited = time.monotonic() - t0
        check_equal("bytes before that EOF", b"", got)
        check(0.5 <= waited <= 8, "EOF about a second after the connection opened",
              "0.5 .. 8 s", "%.1f s" % waited)
        d.wait_stats(lambda st: st[0] == 0, "0 current")
        check_equal("lifetime closes counted", 1, _reasons(d)["lifetime"])
        d.stop()


@harness.case()
def reload_closes_refused():
    """A reload that adds deny = 127.0.0.2 closes the live connections from
    it, and only those."""
    with Daemon(config="") as d:
        d.start()
        listener = d.listener()
        bad, good = _from("127.0.0.2", listener), _from("127.0.0.3", listener)
        _served(bad, "127.0.0.2 before the reload")
        _served(good, "127.0.0.3 before the reload")
        since = d.mark()
        d.write_config("deny = 127.0.0.2\n")
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: configuration reloaded", since=since)
        got = harness.expect_eof(bad, timeout=5, what="127.0.0.2 closed after the reload")
        check_equal("bytes before its EOF", b"", got)
        _served(good, "127.0.0.3 after the reload")
        d.stop()


# ---------------------------------------------------------------- UDP

def _udp_from(src, port=0):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, port))
    return s


def _answers(s, wait=0.5, want=None):
    """Datagrams that come back within wait seconds (or until want of them
    came, and a little longer for extra ones): [(data, source)]."""
    out = []
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if want is not None and len(out) >= want:
            left = min(left, 0.05)
        if left <= 0 or not select.select([s], [], [], left)[0]:
            return out
        out.append(s.recvfrom(70000))


def _udp_daemon(config="", host="0.0.0.0"):
    port = _free_udp_port()
    return Daemon(config=config, listen=["udp:%s:%d" % (host, port)]), port


def _free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]


@harness.case()
def udp_reply_source():
    """A wildcard UDP socket answers from the address each datagram was
    sent to; one datagram of the same size per datagram, also 0 and
    65507 bytes; on 0.0.0.0, and for IPv4 clients of a dual-stack [::]."""
    hosts = ["0.0.0.0"] + (["[::]"] if harness.have_ipv6_loopback() else [])
    for host in hosts:
        d, port = _udp_daemon(host=host)
        with d:
            d.start()
            c = _udp_from("127.0.0.1")
            for dst in ("127.0.0.5", "127.0.0.1", "127.1.2.3"):
                for size in (0, 1, 1000, 65507):
                    data = os.urandom(size)
                    c.sendto(data, (dst, port))
                    got = _answers(c, wait=2.0, want=1)
                    check_equal("answers on %s to a %d-byte datagram sent to %s" % (host, size, dst),
                                [(data, (dst, port))], got)
            d.stop()


@harness.case()
def udp_loop_ports():
    """Datagrams from ports 7 and 19 (echo and chargen), and from echod's
    own port, are not answered: the echo loop of CERT CA-1996-01."""
    d, port = _udp_daemon()
    with d:
        d.start()
        for src_port in (7, 19, 1023, port):
            c = _udp_from("127.0.0.2", src_port)
            c.sendto(b"loop?", ("127.0.0.1", port))
            check_equal("answers to a datagram from port %d" % src_port, [], _answers(c))
            c.close()
        c = _udp_from("127.0.0.2")
        c.sendto(b"fine", ("127.0.0.1", port))
        check_equal("answer from an ordinary port", 1, len(_answers(c)))
        check_equal("udp_loop drops counted", 4, _reasons(d)["udp_loop"])
        d.stop()


@harness.case()
def udp_acl():
    """allow/deny apply to datagrams too."""
    d, port = _udp_daemon("deny = 127.0.0.2\n")
    with d:
        d.start()
        bad, good = _udp_from("127.0.0.2"), _udp_from("127.0.0.3")
        bad.sendto(b"x", ("127.0.0.1", port))
        good.sendto(b"y", ("127.0.0.1", port))
        check_equal("answers to a denied source", [], _answers(bad))
        check_equal("answers to an admitted source", 1, len(_answers(good)))
        check_equal("udp_acl drops counted", 1, _reasons(d)["udp_acl"])
        d.stop()


@harness.case()
def udp_rate():
    """udp_rate_per_source = 20: a burst of 100 gets about 20 answers, then
    about 20 a second; another source has its own budget."""
    d, port = _udp_daemon("udp_rate_per_source = 20\n")
    with d:
        d.start()
        c = _udp_from("127.0.0.2")
        for i in range(100):
            c.sendto(b"burst %d" % i, ("127.0.0.1", port))
        burst = len(_answers(c, wait=1.0))
        check(18 <= burst <= 45, "answers to a burst of 100 at 20 per second", "about 20",
              burst)
        t0 = time.monotonic()
        sent = 0
        got = 0
        while time.monotonic() - t0 < 3:
            c.sendto(b"steady", ("127.0.0.1", port))
            sent += 1
            got += len(_answers(c, wait=0.01))
        got += len(_answers(c, wait=0.5))
        elapsed = time.monotonic() - t0
        print("burst: %d of 100 answered; steady: %d of %d in %.1f s" % (burst, got, sent, elapsed))
        check(got <= 20 * elapsed + 25 and got >= 20, "answers at the steady rate",
              "about %d" % (20 * elapsed), got)
        other = _udp_from("127.0.0.3")
        other.sendto(b"mine", ("127.0.0.1", port))
        check_equal("another source while the first is limited", 1, len(_answers(other)))
        check(_reasons(d)["udp_rate"] > 0, "udp_rate drops counted", "> 0", _reasons(d))
        d.stop()


@harness.case()
def udp_rate_reload():
    """A reload changes udp_rate_per_source in place (a new rate for the
    same table), and 0 turns the limit off: the whole burst is answered."""
    d, port = _udp_daemon("udp_rate_per_source = 5\n")
    with d:
        d.start()
        c = _udp_from("127.0.0.2")

        def burst(tag):
            for i in range(60):
                c.sendto(b"%s %d" % (tag, i), ("127.0.0.1", port))
            return len(_answers(c, wait=1.0))

        first = burst(b"at5")
        check(first <= 20, "a burst at 5 per second", "about 5", first)
        for conf, tag in (("udp_rate_per_source = 1000\n", b"at1000"),
                          ("udp_rate_per_source = 0\n", b"off")):
            since = d.mark()
            d.write_config(conf)
            d.signal(signal.SIGHUP)
            d.wait_log(r"^echod: configuration reloaded", since=since)
            got = burst(tag)
            print("%s: %d of 60 answered" % (conf.strip(), got))
            check(got >= 55, "a burst of 60 after `%s`" % conf.strip(), "all (UDP may drop a few)",
                  got)
        d.stop()


@harness.case(timeout=180, alone=True)
def udp_many_sources_memory():
    """100,000 distinct sources under udp_rate_per_source: echod's memory
    does not grow beyond its fixed table."""
    d, port = _udp_daemon("udp_rate_per_source = 5\n")
    with d:
        d.start()
        c = _udp_from("127.0.0.1")
        c.sendto(b"warm", ("127.0.0.1", port))
        _answers(c)
        rss0 = d.rss_kib()
        n = 100000
        for i in range(n):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.%d.%d.%d" % (1 + (i >> 16), (i >> 8) & 255, i & 255), 0))
                s.sendto(b"src", ("127.0.0.1", port))
            if i % 2000 == 0:
                time.sleep(0.005)  # let echod keep up: count sources, not kernel drops
        time.sleep(0.5)
        rss1 = d.rss_kib()
        _, datagrams, _ = d.full_stats()
        print("%d sources, %d datagrams received: VmRSS %d -> %d KiB" % (n, datagrams, rss0, rss1))
        check(datagrams >= n // 2, "test setup: echod received the datagrams", ">= %d" % (n // 2),
              datagrams)
        check(rss1 - rss0 <= 3 * 1024, "VmRSS growth with 100,000 sources",
              "at most 3 MiB (the fixed rate table is 1 MiB)", "%d KiB" % (rss1 - rss0))
        d.stop()


@harness.case(timeout=90)
def refusal_log_limited():
    """10,000 refused datagrams and 300 refused connections log at most a
    line or two per reason, and the counters count every one."""
    d, port = _udp_daemon("deny = 127.0.0.2\n")
    with d:
        d.start()
        c = _udp_from("127.0.0.2")
        for i in range(10000):
            c.sendto(b"flood", ("127.0.0.1", port))
            if i % 500 == 0:
                time.sleep(0.01)
        time.sleep(0.5)
        _, datagrams, reasons = d.full_stats()
        lines = d.find_log(r"dropped by allow/deny")
        print("%d datagrams received, %d udp_acl drops, %d log lines: %s" % (
            datagrams, reasons["udp_acl"], len(lines), lines[:2]))
        check(datagrams >= 5000, "test setup: datagrams received", "most of 10,000", datagrams)
        check_equal("udp_acl drops counted: every datagram received", datagrams,
                    reasons["udp_acl"])
        check(1 <= len(lines) <= 2, "log lines for 10,000 drops within seconds", "1 or 2",
              len(lines))
        d.stop()
    with Daemon(config="deny = 127.0.0.2\n") as d:
        d.start()
        for _ in range(300):
            try:
                s = _from("127.0.0.2", d.listener())
                s.close()
            except OSError:
                pass
        d.wait_stats(lambda st: True, "stats")
        lines = d.find_log(r"refused by allow/deny")
        check(1 <= len(lines) <= 2, "log lines for 300 refused connections", "1 or 2", len(lines))
        d.stop()


# ------------------------------------------------- forged datagrams (raw)

def _forge(src, sport, dst, dport, payload):
    """Sends an IPv4/UDP datagram with any source, through a raw socket."""
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as r:
        r.sendto(ip + udp, (dst, 0))


@harness.case()
def udp_forged_sources():
    """A forged datagram whose source is echod's own address and port is
    answered zero times (it would echo to itself for ever); so is one
    from port 0. Inside a private network namespace."""
    if not harness.in_private_netns("raw sockets in a private network namespace"):
        return
    d, port = _udp_daemon()
    with d:
        d.start()
        cpu0 = d.cpu_seconds()
        for _ in range(10):
            _forge("127.0.0.1", port, "127.0.0.1", port, b"self")
            _forge("127.0.0.2", 0, "127.0.0.1", port, b"port zero")
        time.sleep(2)
        cpu = d.cpu_seconds() - cpu0
        _, datagrams, reasons = d.full_stats()
        print("20 forged datagrams: %d received, CPU %.2f s, drops %s" % (datagrams, cpu, reasons))
        check(datagrams <= 20, "datagrams echod received (no loop)", "at most the 20 forged",
              datagrams)
        check(cpu < 1.0, "CPU after 10 self-addressed datagrams", "well under 1 s", "%.2f s" % cpu)
        check_equal("udp_loop drops", datagrams, reasons["udp_loop"])
        c = _udp_from("127.0.0.1")
        c.sendto(b"still here", ("127.0.0.1", port))
        check_equal("an ordinary datagram after the forgeries", 1, len(_answers(c)))
        d.stop()


if __name__ == "__main__":
    harness.main()
