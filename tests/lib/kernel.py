"""What the machine's kernel offers the tests: IPv6 on loopback, free
ports, the queues of a TCP connection, the fd limit."""

import os
import resource
import socket

from lib.check import fail

CLK_TCK = os.sysconf("SC_CLK_TCK")


def family_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def raise_nofile():
    """Raises this process's RLIMIT_NOFILE soft limit to the hard limit
    (daemons started afterwards inherit it). Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port(hosts=("127.0.0.1",), kind=socket.SOCK_STREAM):
    """A port that is free on every host right now (someone may take it
    before we bind it again: callers retry)."""
    for _ in range(100):
        with socket.socket(family_of(hosts[0]), kind) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts[1:]:
            try:
                with socket.socket(family_of(h), kind) as s:
                    s.bind((h, port))
            except OSError:
                ok = False
                break
        if ok:
            return port
    fail("found no free port on %s" % (hosts,))


def listening_socket(host="127.0.0.1", kind=socket.SOCK_STREAM):
    """A socket bound to host on a free port (listening, for a stream)."""
    s = socket.socket(family_of(host), kind)
    s.bind((host, 0))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    return s


def cpu_seconds(pid):
    """utime + stime of process pid, in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tcp_socket(local_port, remote_port):
    """The fields of the TCP socket local_port -> remote_port on loopback
    in /proc/net/tcp{,6} (see proc(5)); None if there is no such socket."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    lp = int(fields[1].rsplit(":", 1)[1], 16)
                    rp = int(fields[2].rsplit(":", 1)[1], 16)
                    if lp == local_port and rp == remote_port:
                        return fields
        except FileNotFoundError:
            continue
    return None


def listener_fd(pid, port):
    """The descriptor in process pid of its TCP socket listening on port;
    None if it has none."""
    fields = tcp_socket(port, 0)
    if fields is None:
        return None
    target = "socket:[%s]" % fields[9]
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)) == target:
                return int(fd)
        except OSError:
            continue
    return None


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the TCP socket local_port -> remote_port on
    loopback; None if there is no such socket."""
    fields = tcp_socket(local_port, remote_port)
    if fields is None:
        return None
    tx, rx = fields[4].split(":")
    return int(tx, 16), int(rx, 16)


def tcp_timer(local_port, remote_port):
    """(timer kind, seconds until it fires) of the TCP socket local_port ->
    remote_port on loopback (kind 2: keepalive); None if there is no such
    socket."""
    fields = tcp_socket(local_port, remote_port)
    if fields is None:
        return None
    tr, when = fields[5].split(":")
    return int(tr, 16), int(when, 16) / CLK_TCK
