#!/usr/bin/env python3
"""Listeners: IPv6 (and dual stack), Unix stream sockets (stale and live
socket files), UDP (one datagram back per datagram, to its sender)."""

import os
import socket
import tempfile

import harness
from harness import MIB, Daemon, check, check_bytes, fail


def _need_ipv6():
    if not harness.have_ipv6_loopback():
        raise harness.Skip("no IPv6 on the loopback interface (cannot bind ::1)")


def _start_logged(d, prefix, what):
    """Starts d; its TCP listener is logged as PREFIX + PORT. Returns it."""
    d.start()
    listener = d.listener("tcp")
    check(listener.text.startswith(prefix) and listener.port > 0, what, prefix + "PORT", listener.text)
    return listener


@harness.case()
def ipv6():
    """-l [::1]:0: logged as [::1]:PORT (tcp), echoes over IPv6."""
    _need_ipv6()
    with Daemon(listen=["[::1]:0"]) as d:
        _start_logged(d, "[::1]:", "logged IPv6 listener")
        s = d.connect()
        check(s.family == socket.AF_INET6, "client socket family", "AF_INET6", s.family)
        harness.echo(s, os.urandom(MIB), what="echo over IPv6")
        s.close()
        d.stop()


@harness.case()
def ipv6_dual_stack():
    """-l [::]:0 is dual stack: reachable over 127.0.0.1 and ::1."""
    _need_ipv6()
    with Daemon(listen=["[::]:0"]) as d:
        listener = _start_logged(d, "[::]:", "logged wildcard listener")
        s4 = harness.connect(listener, family=socket.AF_INET, address=("127.0.0.1", listener.port))
        harness.echo(s4, b"over IPv4\n", what="echo over 127.0.0.1 on [::]")
        s6 = harness.connect(listener, family=socket.AF_INET6, address=("::1", listener.port))
        harness.echo(s6, b"over IPv6\n", what="echo over ::1 on [::]")
        s4.close()
        s6.close()
        d.stop()


def _empty_conf(tmp):
    path = os.path.join(tmp, "empty.conf")
    open(path, "w").close()
    return path


def _unix_daemon(tmp, path, **kw):
    return Daemon(listen=["unix:" + path], tmpdir=tmp, **kw)


@harness.case()
def unix():
    """-l unix:/PATH: logged as unix:/PATH (unix), echoes, half-close works."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with _unix_daemon(tmp, path) as d:
            d.start()
            listener = d.listener("unix")
            check(listener.text == "unix:" + path, "logged Unix listener", "unix:" + path, listener.text)
            s = d.connect("unix")
            harness.echo(s, os.urandom(2 * MIB), what="echo over a Unix socket")
            payload = os.urandom(100000)
            got = harness.pump([(s, payload, True)], what="half-closed Unix echo")[0]
            check_bytes("echo before EOF on a half-closed Unix socket", payload, got)
            s.close()
            d.stop()


@harness.case()
def unix_stale_socket():
    """A stale socket file (nobody listening) is replaced."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        stale.bind(path)
        stale.close()
        check(os.path.exists(path), "test setup: stale socket file exists", path, "missing")
        with _unix_daemon(tmp, path) as d:
            d.start()
            s = d.connect("unix")
            harness.echo(s, b"replaced the stale socket\n", what="echo on the replaced socket")
            s.close()
            d.stop()


@harness.case()
def unix_live_socket():
    """A live socket file (someone listening) is not replaced: exit 1, and
    the other listener still works."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
            live.bind(path)
            live.listen(5)
            r = harness.run(["-c", _empty_conf(tmp), "-l", "unix:" + path], timeout=20)
            check(r.rc == harness.EXIT_FAILURE, "echod on a live Unix socket", "exit status 1",
                  r.describe())
            check(path in r.stderr, "the message names the socket", path, r.stderr)
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(5)
                try:
                    c.connect(path)
                except OSError as e:
                    fail("the live listener still reachable after echod gave up", "connect", e)
                live.settimeout(5)
                conn, _ = live.accept()
                conn.close()


@harness.case()
def unix_bound_not_listening():
    """A socket file whose owner has bound it but not listened yet is not
    stale: echod leaves it alone and exits 1."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as owner:
            owner.bind(path)
            ino = os.stat(path).st_ino
            r = harness.run(["-c", _empty_conf(tmp), "-l", "unix:" + path], timeout=20)
            check(r.rc == harness.EXIT_FAILURE, "echod on a socket bound by a live process",
                  "exit status 1", r.describe())
            check(os.path.exists(path) and os.stat(path).st_ino == ino,
                  "the live process's socket file is left in place", "same inode %d" % ino,
                  os.stat(path).st_ino if os.path.exists(path) else "removed")
            owner.listen(1)  # and its owner can still serve on it
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(5)
                c.connect(path)


@harness.case()
def unix_unlink_own_only():
    """At exit echod removes the socket file it created, not a file (or
    another instance's socket) that has replaced it meanwhile."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with _unix_daemon(tmp, path) as d:
            d.start()
            d.stop()
        check(not os.path.exists(path), "echod's own socket file is removed at exit", "removed",
              "still there")
        for what in ("a regular file", "another socket"):
            with _unix_daemon(tmp, path) as d:
                d.start()
                os.unlink(path)
                other = None
                if what == "a regular file":
                    with open(path, "w") as f:
                        f.write("precious\n")
                else:
                    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    other.bind(path)
                    other.listen(1)
                ino = os.stat(path).st_ino
                d.stop()
                check(os.path.exists(path) and os.stat(path).st_ino == ino,
                      "%s that replaced echod's socket file survives its exit" % what,
                      "the same file (inode %d)" % ino, "removed" if not os.path.exists(path) else
                      "inode %d" % os.stat(path).st_ino)
                os.unlink(path)
                if other:
                    other.close()


@harness.case()
def unix_not_a_socket():
    """A regular file at the socket path is never removed: exit 1, file intact."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with open(path, "w") as f:
            f.write("precious\n")
        r = harness.run(["-c", _empty_conf(tmp), "-l", "unix:" + path], timeout=20)
        check(r.rc == harness.EXIT_FAILURE, "echod on a path holding a regular file", "exit status 1",
              r.describe())
        content = open(path).read() if os.path.exists(path) else None
        check(content == "precious\n", "the regular file is left alone", "precious\\n", content)


@harness.case()
def unix_peer_vanishes():
    """Unix clients that close while echod still has data for them (its
    writes fail with EPIPE) never stop the daemon: SIGPIPE is not fatal."""
    payload = os.urandom(8 * MIB)
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        with _unix_daemon(tmp, path) as d:
            d.start()
            for i in range(10):
                s = d.connect("unix")
                harness.fill_without_reading(s, payload, stall=0.2)
                s.close()
                d.check_alive("echod survives Unix client #%d closing with echoes pending" % i)
            s = d.connect("unix")
            harness.echo(s, payload[:MIB], what="echo after 10 clients vanished")
            s.close()
            d.wait_stats(lambda st: st[0] == 0, "0 current after the clients vanished")
            d.stop()


@harness.case()
def reuse_port():
    """reuse_port = yes: a second echod binds the same TCP port, both serve."""
    with Daemon(config="reuse_port = yes\n") as a:
        a.start()
        port = a.listener().port
        with Daemon(config="reuse_port = yes\n", listen=["127.0.0.1:%d" % port]) as b:
            b.start()
            check(b.listener().port == port, "second daemon's port", port, b.listener().port)
            for i in range(20):
                s = a.connect()
                harness.echo(s, b"reuse %d" % i, what="echo #%d on the shared port" % i)
                s.close()
            b.stop()
        a.stop()


def _udp_client(listener):
    c = socket.socket(listener.family, socket.SOCK_DGRAM)
    c.bind(("::1" if listener.family == socket.AF_INET6 else "127.0.0.1", 0))
    c.settimeout(5)
    return c


def _udp_echo(c, listener, data, what):
    c.sendto(data, listener.address)
    try:
        got, src = c.recvfrom(70000)
    except socket.timeout:
        fail(what, "a datagram of %d bytes back within 5s" % len(data), "nothing")
    check(src[:2] == listener.address[:2], what + ": reply comes from the listening address",
          listener.address, src)
    check_bytes(what, data, got)


def _udp(listen):
    with Daemon(listen=[listen]) as d:
        d.start()
        listener = d.listener("udp")
        a, b = _udp_client(listener), _udp_client(listener)
        for i, size in enumerate([1, 7, 100, 1400, 4096, 8192]):
            # Interleaved senders: each gets its own datagrams back, one per datagram.
            da, db = os.urandom(size), os.urandom(size + 1)
            a.sendto(da, listener.address)
            b.sendto(db, listener.address)
            for c, data, name in ((a, da, "a"), (b, db, "b")):
                try:
                    got, src = c.recvfrom(70000)
                except socket.timeout:
                    fail("UDP echo to sender %s (%d bytes)" % (name, len(data)), "a datagram",
                         "nothing in 5s")
                check_bytes("UDP datagram #%d echoed to sender %s" % (i, name), data, got)
                check(src[:2] == listener.address[:2], "source of the UDP reply", listener.address, src)
        for c in (a, b):
            c.settimeout(0.3)
            try:
                extra = c.recv(70000)
                fail("one datagram back per datagram", "nothing more", harness._show(extra))
            except socket.timeout:
                pass
            c.close()
        d.check_alive()
        d.stop()


@harness.case()
def udp():
    """-l udp:127.0.0.1:0: each datagram echoed to its sender."""
    _udp("udp:127.0.0.1:0")


@harness.case()
def udp_ipv6():
    """-l udp:[::1]:0: each datagram echoed to its sender."""
    _need_ipv6()
    _udp("udp:[::1]:0")


@harness.case()
def udp_empty_datagram():
    """An empty datagram is echoed as an empty datagram (RFC 862: every
    datagram gets an answering datagram)."""
    with Daemon(listen=["udp:127.0.0.1:0"]) as d:
        d.start()
        listener = d.listener("udp")
        c = _udp_client(listener)
        _udp_echo(c, listener, b"", "echo of an empty datagram")
        _udp_echo(c, listener, b"after", "echo after the empty datagram")
        c.close()
        d.stop()


@harness.case()
def udp_large_datagram():
    """The largest IPv4 UDP datagram (65507 bytes) comes back whole, even with
    a small buffer_size."""
    with Daemon(listen=["udp:127.0.0.1:0"], config="buffer_size = 1K\n") as d:
        d.start()
        listener = d.listener("udp")
        c = _udp_client(listener)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        _udp_echo(c, listener, os.urandom(65507), "echo of a 65507-byte datagram")
        _udp_echo(c, listener, os.urandom(20000), "echo of a 20000-byte datagram")
        c.close()
        d.stop()


@harness.case()
def several_listeners():
    """TCP, UDP and Unix listeners in one daemon, each logged and working."""
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        listen = ["127.0.0.1:0", "udp:127.0.0.1:0", "unix:" + path]
        with Daemon(listen=listen, tmpdir=tmp) as d:
            d.start()
            kinds = sorted(listener.kind for listener in d.listeners)
            check(kinds == ["tcp", "udp", "unix"], "listeners logged", ["tcp", "udp", "unix"], d.listeners)
            for kind in ("tcp", "unix"):
                s = d.connect(kind)
                harness.echo(s, b"via " + kind.encode(), what="echo via " + kind)
                s.close()
            listener = d.listener("udp")
            c = _udp_client(listener)
            _udp_echo(c, listener, b"via udp", "echo via udp")
            c.close()
            d.stop()


if __name__ == "__main__":
    harness.main()
