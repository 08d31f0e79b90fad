#!/usr/bin/env python3
"""PROXY protocol listeners (proxy:ADDR): the header is read (in pieces
too), never echoed; the address it carries is what allow/deny, the
per-source cap and the connection log use; bad, late, oversized or
untrusted headers close the connection and are counted under `proxy`."""

import os
import socket
import struct
import tempfile
import time

import harness
from harness import Daemon, check, check_equal

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v1(src="192.0.2.1", dst="192.0.2.2", sport=5555, dport=7):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src="2001:db8::1", dst="2001:db8::2", sport=6666, dport=7, tlvs=b"", command=0x21):
    if ":" in src:
        addr = socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
        fam = 0x21
    else:
        addr = socket.inet_aton(src) + socket.inet_aton(dst)
        fam = 0x11
    body = addr + struct.pack("!HH", sport, dport) + tlvs
    return V2_SIG + bytes([command, fam]) + struct.pack("!H", len(body)) + body


def _daemon(config=""):
    return Daemon(config="log_connections = yes\n" + config, listen=["proxy:127.0.0.1:0"])


def _closed_without_echo(s, what):
    s.settimeout(6)
    try:
        got = s.recv(100)
    except ConnectionResetError:
        return
    except socket.timeout:
        harness.fail(what, "closed, no byte", "still open after 6 s")
    check_equal(what + ": bytes back", b"", got)


@harness.case()
def header_not_echoed():
    """v1 and v2 (IPv4, IPv6, with TLVs, LOCAL, UNKNOWN): only what
    follows the header comes back; the log shows the header's client."""
    with _daemon() as d:
        d.start()
        cases = [
            (v1(), "192.0.2.1:5555"),
            (v1("2001:db8::7", "2001:db8::8", 4444, 7), "[2001:db8::7]:4444"),
            (v2(), "[2001:db8::1]:6666"),
            (v2("198.51.100.9", "198.51.100.10", 7777, 7, tlvs=b"\x01\x00\x02h2\x04\x00\x00"),
             "198.51.100.9:7777"),
            (b"PROXY UNKNOWN\r\n", "127.0.0.1:"),
            (v2(command=0x20), "127.0.0.1:"),
        ]
        for header, who in cases:
            s = d.connect()
            payload = b"payload after %r" % header[:12]
            s.sendall(header + payload)
            got = harness.recv_exact(s, len(payload), timeout=5, what="echo after the header")
            harness.check_bytes("echo after a PROXY header (%r)" % header[:20], payload, got)
            since = d.mark()
            s.close()
            d.wait_log(r"connection from %s" % who.replace("[", r"\[").replace("]", r"\]"),
                       timeout=5, since=since)
        d.stop()


@harness.case()
def bulk_after_header():
    """A PROXY header with 60 KB behind it in one segment, to a client
    that does not read yet, with buffer_size = 1K: what echod cannot send
    is kept (no overflow of the small buffer), then all of it comes back."""
    if not harness.in_private_netns("a small TCP send buffer"):
        return
    # echod's first send then takes only a part of the 60 KB.
    with open("/proc/sys/net/ipv4/tcp_wmem", "w") as f:
        f.write("4096 4096 8192")
    with _daemon("buffer_size = 1K\n") as d:
        d.start()
        s = harness.connect(d.listener(), rcvbuf=1024)
        payload = bytes(range(256)) * 240
        s.sendall(v1() + payload)
        time.sleep(1)
        d.check_alive("echod after a header with 60 KB behind it")
        got = harness.recv_exact(s, len(payload), timeout=20, what="the 60 KB after the header")
        harness.check_bytes("echo of the data behind the header", payload, got)
        s.close()
        d.stop()


@harness.case()
def late_header_short_lifetime():
    """With max_connection_time under 3 s, a missing header is still a
    PROXY refusal, and the connection closes at the earlier deadline."""
    with _daemon("max_connection_time = 1s\n") as d:
        d.start()
        s = d.connect()
        s.sendall(b"PROXY ")
        t0 = time.monotonic()
        _closed_without_echo(s, "a header that never ends, lifetime 1 s")
        waited = time.monotonic() - t0
        check(waited < 2.9, "closed at the first deadline (1 s)", "under 2.9 s", "%.1f s" % waited)
        counts = d.full_stats()[2]
        check_equal("counted (proxy, lifetime)", (1, 0), (counts["proxy"], counts["lifetime"]))
        d.stop()


@harness.case()
def header_in_pieces():
    """A header that arrives byte by byte, then data: echoed exactly."""
    with _daemon() as d:
        d.start()
        for header in (v1(), v2()):
            s = d.connect()
            for i in range(len(header)):
                s.send(header[i:i + 1])
                time.sleep(0.002)
            harness.echo(s, b"after a slow header\n")
            s.close()
        d.stop()


@harness.case()
def bad_headers():
    """Malformed, missing, oversized, late: closed without a byte, counted."""
    with _daemon() as d:
        d.start()
        bad = [
            b"hello, no header at all\r\n",
            b"PROXY TCP4 192.0.2.1 192.0.2.2 99999 7\r\n",
            b"PROXY TCP4 300.0.2.1 192.0.2.2 1 7\r\n",
            V2_SIG + b"\x21\x11" + struct.pack("!H", 5000) + b"\x00" * 5000,
            V2_SIG + b"\x21\x31" + struct.pack("!H", 0),
        ]
        for header in bad:
            s = d.connect()
            try:
                s.sendall(header)
            except OSError:
                pass
            _closed_without_echo(s, "a bad header %r" % header[:24])
            s.close()
        late = d.connect()
        late.sendall(b"PROXY TCP4 ")  # and nothing more
        t0 = time.monotonic()
        _closed_without_echo(late, "a header that never ends")
        waited = time.monotonic() - t0
        check(2 <= waited <= 6, "a late header is closed after about 3 s", "2 .. 6 s",
              "%.1f s" % waited)
        counts = d.full_stats()[2]
        check_equal("proxy refusals counted", len(bad) + 1, counts["proxy"])
        d.stop()


@harness.case()
def lists_use_header_address():
    """deny and max_connections_per_source apply to the header's source,
    not to the balancer's address."""
    with _daemon("deny = 192.0.2.66\nmax_connections_per_source = 2\n") as d:
        d.start()
        s = d.connect()
        s.sendall(v1("192.0.2.66") + b"let me in")
        _closed_without_echo(s, "a denied client behind the balancer")
        held = []
        for i in range(2):
            c = d.connect()
            c.sendall(v1("192.0.2.5", sport=1000 + i) + b"x")
            harness.check_bytes("client %d of 192.0.2.5" % i, b"x", harness.recv_exact(c, 1))
            held.append(c)
        third = d.connect()
        third.sendall(v1("192.0.2.5", sport=1002) + b"x")
        _closed_without_echo(third, "a third connection of 192.0.2.5 (cap 2)")
        other = d.connect()
        other.sendall(v1("192.0.2.6") + b"y")
        harness.check_bytes("another client behind the same balancer", b"y",
                            harness.recv_exact(other, 1))
        counts = d.full_stats()[2]
        check_equal("refusals (acl, per_source)", (1, 1), (counts["acl"], counts["per_source"]))
        d.stop()


@harness.case()
def untrusted_peer():
    """A peer outside proxy_trusted may not send headers: closed."""
    with _daemon("proxy_trusted = 10.0.0.0/8\n") as d:
        d.start()
        s = d.connect()
        s.sendall(v1() + b"data")
        _closed_without_echo(s, "a PROXY header from an untrusted peer")
        check_equal("proxy refusals", 1, d.full_stats()[2]["proxy"])
        d.stop()


@harness.case()
def eof_before_header():
    """A client that half-closes in the middle of its header (or before
    it) is refused: closed with no byte back, counted, logged at debug."""
    with Daemon(config="log_connections = yes\n", listen=["proxy:127.0.0.1:0"],
                log_level="debug") as d:
        d.start()
        for partial in (b"", b"PROXY TCP4 192.0.2.1", V2_SIG[:7]):
            s = d.connect()
            s.sendall(partial)
            s.shutdown(socket.SHUT_WR)
            _closed_without_echo(s, "EOF after %d bytes of a header" % len(partial))
            s.close()
        d.wait_log(r"PROXY header refused: end of input before the header")
        check_equal("proxy refusals", 3, d.full_stats()[2]["proxy"])
        d.stop()


@harness.case()
def unix_listener():
    """PROXY on a unix listener: the header's address is the client's (in
    the log and for the lists); a LOCAL header (a health check) keeps the
    unix peer."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "lb.sock")
        with Daemon(config="log_connections = yes\ndeny = 192.0.2.66\n",
                    listen=["proxy:unix:" + path], tmpdir=tmp) as d:
            d.start()
            for header, data in ((v1("192.0.2.7", sport=4242), b"via unix"),
                                 (v2(command=0x20), b"local check")):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect(path)
                s.sendall(header + data)
                harness.check_bytes("echo behind a unix PROXY listener", data,
                                    harness.recv_exact(s, len(data)))
                s.close()
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            s.sendall(v1("192.0.2.66") + b"denied")
            _closed_without_echo(s, "a denied client behind a unix balancer")
            s.close()
            d.wait_log(r"connection from 192\.0\.2\.7:4242 .*closed")
            d.wait_log(r"connection from unix .*closed")
            d.stop()


if __name__ == "__main__":
    harness.main()
