#!/usr/bin/env python3
"""Operator settings of sockets echod opens: defer_accept, tcp_keepalive,
free_bind, unix_mode, unix_group."""

import grp
import os
import signal
import socket
import stat
import tempfile
import time

import harness
from harness import Daemon, check, check_equal
from test_keepalive import KEEPALIVE_TIMER


@harness.case()
def defer_accept():
    """defer_accept = 0: a client that says nothing is accepted at once;
    with the default 1s, only once it speaks or the second has passed."""
    for conf, at_once in (("defer_accept = 0\n", True), ("", False)):
        with Daemon(config=conf) as d:
            d.start()
            s = d.connect()
            time.sleep(0.3)
            current = d.stats()[0]
            check_equal("silent client accepted within 0.3 s with %r" % (conf.strip() or "defaults"),
                        1 if at_once else 0, current)
            harness.echo(s, b"now it speaks\n")
            s.close()
            d.stop()


@harness.case()
def tcp_keepalive():
    """tcp_keepalive = 0 turns keepalive off; 30s arms it for 30 s."""
    for conf, want in (("tcp_keepalive = 0\n", None), ("tcp_keepalive = 30s\n", 30)):
        with Daemon(config=conf) as d:
            d.start()
            s = d.connect()
            harness.echo(s, b"x")
            t = harness.tcp_timer(d.listener().port, s.getsockname()[1])
            if want is None:
                check(t is not None and t[0] != KEEPALIVE_TIMER, "no keepalive timer with %r" % conf,
                      "no timer 2", t)
            else:
                check(t is not None and t[0] == KEEPALIVE_TIMER and want - 5 <= t[1] <= want + 1,
                      "keepalive timer with %r" % conf, "timer 2 due in about %d s" % want, t)
            s.close()
            d.stop()


def _reload(d, text):
    since = d.mark()
    d.write_config(text)
    d.signal(signal.SIGHUP)
    d.wait_log(r"^echod: configuration reloaded", since=since)


@harness.case()
def reload_socket_options():
    """A reload applies tcp_keepalive and defer_accept to the listeners it
    keeps, for the connections accepted after it."""
    with Daemon(config="tcp_keepalive = 0\ndefer_accept = 0\n") as d:
        d.start()
        _reload(d, "tcp_keepalive = 30s\ndefer_accept = 0\n")
        s = d.connect()
        harness.echo(s, b"x")
        t = harness.tcp_timer(d.listener().port, s.getsockname()[1])
        check(t is not None and t[0] == KEEPALIVE_TIMER and 25 <= t[1] <= 31,
              "keepalive timer of a connection accepted after the reload",
              "timer 2 due in about 30 s", t)
        s.close()
        d.stop()


@harness.case()
def reload_listener_mode():
    """A reload that turns 127.0.0.1:P into proxy:127.0.0.1:P (or back)
    keeps the socket: no "address in use", and the new mode applies."""
    port = harness.free_port()
    plain, proxy = "listen = 127.0.0.1:%d\n" % port, "listen = proxy:127.0.0.1:%d\n" % port
    with Daemon(config=plain, listen=None) as d:
        d.start()
        _reload(d, proxy)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 7\r\nbehind")
            check_equal("echo through the listener made proxy: by a reload", b"behind",
                        harness.recv_exact(s, 6))
        _reload(d, plain)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            harness.echo(s, b"plain again\n")
        d.stop()


@harness.case()
def free_bind():
    """free_bind = yes binds an address no interface has (yet); without it
    the start fails with exit 1 and a hint."""
    addr = "192.0.2.77:0"
    r = harness.run(["-c", _empty(), "-l", addr])
    check(r.rc == harness.EXIT_FAILURE and "free_bind" in r.stderr,
          "listening on an absent address without free_bind", "exit 1 with a free_bind hint",
          r.describe())
    with Daemon(config="free_bind = yes\n", listen=[addr]) as d:
        d.start()
        check(d.listener().text.startswith("192.0.2.77:"), "listener on the absent address",
              "192.0.2.77:PORT", d.listener().text)
        d.stop()


_tmp = tempfile.TemporaryDirectory(prefix="echod-it-")


def _empty():
    p = os.path.join(_tmp.name, "empty.conf")
    open(p, "w").close()
    return p


@harness.case()
def unix_mode_group():
    """unix_mode and unix_group set the socket file's permissions and
    group from the moment it exists."""
    gid = next((g for g in (100, 1, 2, 3) if g != os.getgid()), 1)
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        path = os.path.join(tmp, "s")
        conf = "unix_mode = 0640\nunix_group = %d\n" % gid
        with Daemon(config=conf, listen=["unix:" + path], tmpdir=tmp) as d:
            d.start()
            st = os.stat(path)
            check_equal("socket file mode", "0o640", oct(stat.S_IMODE(st.st_mode)))
            if os.geteuid() == 0:
                check_equal("socket file group", gid, st.st_gid)
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(path)
            harness.echo(s, b"through a 0640 socket\n")
            s.close()
            d.stop()
        # By name, as an operator writes it.
        name = grp.getgrgid(gid).gr_name
        with Daemon(config="unix_group = %s\n" % name, listen=["unix:" + path], tmpdir=tmp) as d:
            d.start()
            if os.geteuid() == 0:
                check_equal("socket file group, by name (%s)" % name, gid, os.stat(path).st_gid)
            d.stop()
        with Daemon(config="unix_group = no-such-group-here\n", listen=["unix:" + path],
                    tmpdir=tmp) as d:
            d.start(ready=False)
            rc = d.wait_exit(10)
            check(rc == harness.EXIT_FAILURE and d.find_log(r"no such group"),
                  "an unknown unix_group", "exit 1 naming the group", (rc, d.log()))


if __name__ == "__main__":
    harness.main()
