#!/usr/bin/env python3
"""Socket activation: echod serves exactly the sockets it is passed
(LISTEN_FDS, LISTEN_PID), stream ones as TCP or Unix echo, datagram ones as
UDP echo, ignores its 'listen' addresses, and refuses with exit 1 a passed
fd it cannot serve, naming that fd.

Usage: test_activation.py CASE
The first cases start echod with systemd-socket-activate, the tool systemd
ships for this; the others pass fds themselves, as the service manager does.
"""

import os
import re
import socket
import time

import sdtest
from sdtest import check, fail

USING_RX = r"using (\d+) socket\(s\) passed by the service manager; ignoring 'listen'"


def own_listen_decoy():
    """A 'listen' address echod must ignore once it is passed sockets."""
    return os.path.join(sdtest.tmpdir(), "must-not-exist.sock")


def check_ignored_listen(proc, decoy, n_sockets):
    m = proc.wait_stderr(USING_RX)[0]
    check(int(m.group(1)) == n_sockets, "echod says it was passed %s socket(s), not %d"
          % (m.group(1), n_sockets))
    check(not os.path.exists(decoy), "echod opened its own 'listen' address %s "
          "although it was passed sockets" % decoy)


def listeners(proc, count):
    """The (address, kind) of the first count 'listening on' lines."""
    found = proc.wait_stderr(sdtest.LISTENING_RX, count=count)
    return sorted((m.group(1), m.group(2)) for m in found)


def activate(listen_args, datagram, echod_args, trigger):
    """Runs echod under systemd-socket-activate on free loopback ports;
    trigger(port) makes the first contact, which execs echod. Retries when
    another process took the port in between."""
    tool = sdtest.need_tool("systemd-socket-activate")
    hosts = [h for h, _ in listen_args]
    kind = socket.SOCK_DGRAM if datagram else socket.SOCK_STREAM
    for _ in range(5):
        port = sdtest.free_port(hosts, kind)
        argv = [tool] + (["--datagram"] if datagram else [])
        for host, fmt in listen_args:
            argv += ["-l", fmt % port]
        argv += [sdtest.echod_path(), "-c", sdtest.write_config(""), "--log-level=info"]
        argv += list(echod_args)
        proc = sdtest.spawn(argv, what="systemd-socket-activate + echod")
        proc.wait_stderr(r"Listening on .* as \d+\.|Failed|already in use",
                         count=len(listen_args), eof_ok=True)
        text = proc.stderr_text()
        if "Failed" in text or "already in use" in text:
            proc.kill()
            print("systemd-socket-activate: %s; trying another port" % text.strip())
            continue
        trigger(port)
        return proc, port
    fail("systemd-socket-activate could not bind a free port 5 times")


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_tcp():
    decoy = own_listen_decoy()
    data = sdtest.payload(1 << 20)
    got = {}

    def first_client(port):
        # This connection wakes the activator, which execs echod.
        got["first"] = sdtest.tcp_echo(("127.0.0.1", port), data)

    proc, port = activate([("127.0.0.1", "127.0.0.1:%d")], False,
                          ["-l", "unix:" + decoy], first_client)
    check(got["first"] == data, "the first client (the one that activated echod) "
          "got %d bytes back, not the %d it sent" % (len(got["first"]), len(data)))
    check_ignored_listen(proc, decoy, 1)
    check(listeners(proc, 1) == [("127.0.0.1:%d" % port, "tcp")],
          "echod does not log 'listening on 127.0.0.1:%d (tcp)'" % port)
    for i in range(3):
        sdtest.check_tcp_echo(("127.0.0.1", port), sdtest.payload(100000, seed=i + 2))
    sdtest.stop_echod(proc)
    check(len(proc.wait_stderr(sdtest.LISTENING_RX, count=1)) == 1,
          "echod listens on more than the one socket it was passed:\n" + proc.stderr_text())


@sdtest.case("tcp-dual", timeout=180)
@sdtest.needs_systemd
def case_tcp_dual():
    if not sdtest.have_ipv6_loopback():
        sdtest.skip("no IPv6 loopback address ::1")
    decoy = own_listen_decoy()
    proc, port = activate([("127.0.0.1", "127.0.0.1:%d"), ("::1", "[::1]:%d")], False,
                          ["-l", "unix:" + decoy],
                          lambda port: sdtest.check_tcp_echo(("::1", port)))
    check_ignored_listen(proc, decoy, 2)
    want = sorted([("127.0.0.1:%d" % port, "tcp"), ("[::1]:%d" % port, "tcp")])
    check(listeners(proc, 2) == want, "echod's listeners are %s, expected %s"
          % (listeners(proc, 2), want))
    sdtest.check_tcp_echo(("127.0.0.1", port))
    sdtest.check_tcp_echo(("::1", port))
    sdtest.check_tcp_echo(("127.0.0.1", port), b"\x00" * 5000)
    sdtest.stop_echod(proc)


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_datagram():
    decoy = own_listen_decoy()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    first = b"first datagram \x00\xff"

    def first_datagram(port):
        # Queued in the socket until echod runs; echod must answer it.
        client.sendto(first, ("127.0.0.1", port))

    proc, port = activate([("127.0.0.1", "127.0.0.1:%d")], True,
                          ["-l", "unix:" + decoy], first_datagram)
    check_ignored_listen(proc, decoy, 1)
    check(listeners(proc, 1) == [("127.0.0.1:%d" % port, "udp")],
          "echod does not log 'listening on 127.0.0.1:%d (udp)'" % port)
    # The first datagram's echo, then more, each from the same client socket.
    client.settimeout(sdtest.TIMEOUT)
    try:
        data, src = client.recvfrom(65536)
    except socket.timeout:
        fail("no echo of the datagram that activated echod")
    check(data == first, "the activating datagram came back as %r, not %r" % (data, first))
    for i in range(3):
        sdtest.check_udp_echo(("127.0.0.1", port), b"datagram %d \x00 \xc3\x28" % i, sock=client)
    client.close()
    sdtest.stop_echod(proc)


# ---- fds passed by hand, as the service manager does ----

@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_mixed():
    """IPv4 and IPv6 TCP, UDP and a Unix stream socket at once."""
    socks = [sdtest.listening_socket("127.0.0.1")]
    if sdtest.have_ipv6_loopback():
        socks.append(sdtest.listening_socket("::1"))
    socks.append(sdtest.listening_socket("127.0.0.1", socket.SOCK_DGRAM))
    path = os.path.join(sdtest.tmpdir(), "echo.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(path)
    unix.listen(16)
    socks.append(unix)
    decoy = own_listen_decoy()
    proc = sdtest.start_echod(["-l", "unix:" + decoy], fds=socks)
    check_ignored_listen(proc, decoy, len(socks))
    found = listeners(proc, len(socks))
    kinds = sorted(k for _, k in found)
    want = sorted(["tcp"] * (len(socks) - 2) + ["udp", "unix"])
    check(kinds == want, "echod's listeners are %s; expected kinds %s" % (found, want))
    proc.wait_stderr(r"echod: ready$")
    for s in socks:
        if s.family == socket.AF_UNIX:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
                c.settimeout(sdtest.TIMEOUT)
                c.connect(path)
                c.sendall(b"unix \x00 echo")
                c.shutdown(socket.SHUT_WR)
                got = b""
                while True:
                    chunk = c.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                check(got == b"unix \x00 echo", "Unix socket echoed %r" % got)
        elif s.type == socket.SOCK_DGRAM:
            sdtest.check_udp_echo(s.getsockname()[:2])
        else:
            sdtest.check_tcp_echo(s.getsockname()[:2])
    sdtest.stop_echod(proc)


def refused(fds, bad_fd, what):
    decoy = own_listen_decoy()
    proc = sdtest.start_echod(["-l", "unix:" + decoy], fds=fds)
    code = proc.wait()
    err = proc.stderr_text()
    check(code == 1, "echod passed %s as fd %d exited %s, not 1; stderr:\n%s"
          % (what, bad_fd, code, err))
    lines = [line for line in err.splitlines() if line.startswith("echod: ")]
    named = [line for line in lines if re.search(r"(?<![\w.:/\[-])%d(?![\w.:/\]-])" % bad_fd, line)]
    check(named, "no error line names fd %d (%s); stderr:\n%s" % (bad_fd, what, err))
    check(not os.path.exists(decoy), "echod opened its own 'listen' address")
    check(not re.search(r"echod: ready$", err, re.M), "echod said ready although it refused fd %d"
          % bad_fd)
    print("refused: " + named[0])


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_pipe():
    r, w = os.pipe()
    refused([r], 3, "the read end of a pipe")


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_file():
    path = sdtest.write_config("not a socket\n", "regular-file")
    fd = os.open(path, os.O_RDONLY)
    refused([fd], 3, "a regular file")


@sdtest.case("not-listening", timeout=180)
@sdtest.needs_systemd
def case_not_listening():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    refused([s], 3, "a bound TCP socket that does not listen")


@sdtest.case("second-bad", timeout=180)
@sdtest.needs_systemd
def case_second_bad():
    good = sdtest.listening_socket("127.0.0.1")
    r, w = os.pipe()
    refused([good, r], 4, "a pipe after a good listening socket")


@sdtest.case("pid-mismatch", timeout=180)
@sdtest.needs_systemd
def case_pid_mismatch():
    """LISTEN_FDS meant for another process (LISTEN_PID differs): echod
    must not take fd 3, and listens on its own address."""
    s = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod(["-l", "127.0.0.1:0"], fds=[s], listen_pid=False,
                              env={"LISTEN_PID": str(os.getpid())})
    found = proc.wait_stderr(sdtest.LISTENING_RX)
    proc.wait_stderr(r"echod: ready$")
    addr = sdtest.parse_addr(found[0].group(1))
    check(addr != s.getsockname(), "echod took a socket whose LISTEN_PID was another process's")
    check(not re.search(USING_RX, proc.stderr_text()),
          "echod used passed sockets whose LISTEN_PID was another process's")
    sdtest.check_tcp_echo(addr)
    sdtest.stop_echod(proc)


@sdtest.case("udp-connected", timeout=180)
@sdtest.needs_systemd
def case_udp_connected():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.connect(("127.0.0.1", 9))
    refused([s], 3, "a connected UDP socket")


@sdtest.case("udp-unbound", timeout=180)
@sdtest.needs_systemd
def case_udp_unbound():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    refused([s], 3, "an unbound UDP socket")


@sdtest.case("accept-error", timeout=180)
@sdtest.needs_systemd
def case_accept_error():
    """The process that passed a listener shuts it down (its copy): accept
    fails with EINVAL for good. echod drops that listener with one error
    line, does not spin, and serves its other listener."""
    dead = sdtest.listening_socket("127.0.0.1")
    live = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod([], fds=[dead, live])
    proc.wait_stderr(r"echod: ready$")
    dead.shutdown(socket.SHUT_RDWR)
    time.sleep(0.5)
    cpu0 = sdtest.cpu_seconds(proc.pid)
    time.sleep(3)
    cpu = sdtest.cpu_seconds(proc.pid) - cpu0
    err = proc.stderr_text()
    failures = [line for line in err.splitlines() if "accept" in line]
    print("3 s after the shutdown: %.2f s of CPU, %d accept error lines: %s"
          % (cpu, len(failures), failures[:2]))
    check(cpu < 0.5, "echod spent %.2f s of CPU in 3 s on a dead listener" % cpu)
    check(1 <= len(failures) <= 2, "expected one error line for the dead listener, got %d:\n%s"
          % (len(failures), "\n".join(failures[:5])))
    sdtest.check_tcp_echo(live.getsockname()[:2])
    sdtest.stop_echod(proc)


@sdtest.case("accept-error-at-limit", timeout=180)
@sdtest.needs_systemd
def case_accept_error_at_limit():
    """The same while echod is at max_connections, its listener paused: a
    listener shut down meanwhile must not be reported in every pass."""
    dead = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod(["-m", "1"], fds=[dead])
    proc.wait_stderr(r"echod: ready$")
    held = socket.create_connection(dead.getsockname()[:2], timeout=5)
    held.sendall(b"x")
    check(held.recv(1) == b"x", "the one connection allowed is served")
    waiting = socket.create_connection(dead.getsockname()[:2], timeout=5)
    time.sleep(0.5)
    dead.shutdown(socket.SHUT_RDWR)
    time.sleep(0.5)
    cpu0 = sdtest.cpu_seconds(proc.pid)
    time.sleep(3)
    cpu = sdtest.cpu_seconds(proc.pid) - cpu0
    print("at the limit, 3 s after the shutdown: %.2f s of CPU" % cpu)
    check(cpu < 0.5, "echod spent %.2f s of CPU in 3 s at its limit on a dead listener" % cpu)
    held.close()
    waiting.close()
    sdtest.stop_echod(proc)


@sdtest.case("proxy-named", timeout=180)
@sdtest.needs_systemd
def case_proxy_named():
    """A socket passed with FileDescriptorName=proxy is a PROXY listener:
    the header is read, not echoed."""
    s = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod([], fds=[s], env={"LISTEN_FDNAMES": "proxy"})
    proc.wait_stderr(r"echod: ready$")
    header = b"PROXY TCP4 192.0.2.1 192.0.2.2 5555 7\r\n"
    with socket.create_connection(s.getsockname()[:2], timeout=5) as c:
        c.sendall(header + b"behind a balancer")
        got = b""
        while len(got) < len(b"behind a balancer"):
            chunk = c.recv(100)
            if not chunk:
                break
            got += chunk
    check(got == b"behind a balancer", "echo behind a proxy-named socket: %r" % got)
    sdtest.stop_echod(proc)


def _http_get(addr, path):
    with socket.create_connection(addr, timeout=5) as c:
        c.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path)
        got = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                return got
            got += chunk


@sdtest.case("metrics-named", timeout=180)
@sdtest.needs_systemd
def case_metrics_named():
    """A stream socket passed with FileDescriptorName=metrics serves the
    metrics, not echo, and takes the place of the `metrics` key; the other
    passed socket echoes."""
    echo = sdtest.listening_socket("127.0.0.1")
    metrics = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod([], fds=[echo, metrics], env={"LISTEN_FDNAMES": "echo:metrics"},
                              config="metrics = 127.0.0.1:1\n")
    proc.wait_stderr(r"echod: ready$")
    sdtest.check_tcp_echo(echo.getsockname()[:2])
    got = _http_get(metrics.getsockname()[:2], b"/metrics")
    check(got.startswith(b"HTTP/1.0 200 OK\r\n") and b"\nechod_connections_total 1\n" in got,
          "metrics on the socket named metrics, one echo connection counted: %r" % got[:300])
    err = proc.stderr_text()
    check("ignoring 'metrics'" in err and "127.0.0.1:1" not in err,
          "the metrics key is ignored when a metrics socket is passed:\n%s" % err)
    sdtest.stop_echod(proc)


@sdtest.case("metrics-too-many", timeout=180)
@sdtest.needs_systemd
def case_metrics_too_many():
    """More sockets named metrics than echod serves (8): it refuses to
    start, exit 1, saying so; it does not serve some and drop others."""
    socks = [sdtest.listening_socket("127.0.0.1") for _ in range(9)]
    echo = sdtest.listening_socket("127.0.0.1")
    proc = sdtest.start_echod([], fds=[echo] + socks,
                              env={"LISTEN_FDNAMES": ":".join(["echo"] + ["metrics"] * 9)})
    code = proc.wait()
    err = proc.stderr_text()
    check(code == 1, "echod given 9 metrics sockets exited %s, not 1; stderr:\n%s" % (code, err))
    check(re.search(r"^echod: cannot serve metrics on \S+: at most 8 metrics listeners", err, re.M),
          "the refusal says why:\n" + err)
    check(not re.search(r"echod: ready$", err, re.M), "echod said ready:\n" + err)


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_netlink():
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 0)
    refused([s], 3, "a netlink socket (an address family echod does not serve)")


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_seqpacket():
    path = os.path.join(sdtest.tmpdir(), "seqpacket.sock")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.bind(path)
    s.listen(4)
    refused([s], 3, "a listening Unix SOCK_SEQPACKET socket (neither stream nor datagram)")


if __name__ == "__main__":
    sdtest.run_cases()
