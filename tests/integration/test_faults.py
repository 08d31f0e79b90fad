#!/usr/bin/env python3
"""Faults no test can make the kernel return on purpose, made on purpose:
tests/faults/inject.c, preloaded into echod, fails chosen calls of chosen
libc functions with a chosen errno (an accept that returns EPROTO, a
setsockopt refused, an allocation that fails, a read error on the config
file, a UDP send the kernel refuses).

The sweep cases fail each call, one at a time, of one function while echod
starts and serves a fixed workload (TCP, bulk TCP, UDP, a metrics scrape,
SIGUSR1, SIGHUP). Whatever call fails, echod either refuses to start with
a message and exit status 1 or 78, or goes on serving: it may lose the one
client the failed call was for (never a byte of any other: what a client
gets back is a prefix of what it sent), and the next client gets an exact
echo. It never dies of a signal, never hangs, and the sanitizers stay
quiet.

The other cases check what one fault must do: each accept error class,
a config file that cannot be read on reload, a coalesced UDP send that the
kernel refuses, a scraper whose socket fails."""

import os
import re
import select
import signal
import shutil
import socket
import struct
import tempfile
import time

import harness
from lib import kernel, service
from harness import Daemon, check, check_equal, fail

INJECT = os.environ.get("ECHOD_INJECT", "")

# Every error path of the workload below: metrics, the abuse tables, the
# extra connection state, PROXY listeners, log_connections, the debug lines.
SWEEP_CONFIG = """\
log_level = debug
reuse_port = yes
free_bind = yes
unix_group = %d
metrics = 127.0.0.1:0
allow = 127.0.0.0/8
allow = ::1
max_connections_per_source = 64
max_connection_time = 10min
udp_rate_per_source = 100000
log_connections = yes
""" % os.getgid()
# The PROXY listener is told from the plain one by its address; the Unix
# socket file is in the daemon's own directory (added by sweep_daemon).
SWEEP_LISTEN = ("127.0.0.1:0", "udp:127.0.0.1:0", "proxy:127.0.0.2:0", "[::1]:0",
                "udp:[::1]:0")


def sweep_daemon(spec, count=False):
    tmp = tempfile.mkdtemp(prefix="echod-faults-")
    listen = SWEEP_LISTEN + ("unix:" + os.path.join(tmp, "echo.sock"),)
    return faulty(spec, SWEEP_CONFIG, listen, count=count, tmpdir=tmp)


GET = b"GET /metrics HTTP/1.0\r\n\r\n"
READY = r"^echod: ready$"
INJECTED = re.compile(r"^inject: (\w+) call (\d+) fails with (\w+)$")


def require_inject():
    if not INJECT or not os.path.exists(INJECT):
        raise harness.Skip("ECHOD_INJECT is not set (run through meson)")


def fault_env(spec, count=False):
    env = {"LD_PRELOAD": INJECT, "ECHOD_FAULTS": spec}
    # ASan wants to be first in the library list; the injector is first.
    asan = os.environ.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "verify_asan_link_order=0"
    if count:
        env["ECHOD_FAULTS_COUNT"] = "1"
    return env


def faulty(spec, config="", listen=("127.0.0.1:0",), count=False, **kw):
    require_inject()
    return Daemon(config=config, listen=listen, env=fault_env(spec, count), **kw)


def injected(d):
    """The faults that happened: [(func, call, errno)]."""
    out = []
    for line in d.log():
        m = INJECTED.match(line)
        if m:
            out.append((m.group(1), int(m.group(2)), m.group(3)))
    return out


def check_reached(d, what):
    """The fault happened (its line may still be on its way)."""
    check(d.errlog.wait(INJECTED.pattern, 5), what + ": the fault was reached",
          "an `inject:` line", d.stderr())


def start_or_exit(d, timeout=20):
    """Starts d; returns True once it is ready, False if it exited first."""
    d.start(ready=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if d.find_log(READY):
            d.start_listeners()
            return True
        if not d.alive():
            d.wait_exit(5)
            return False
        time.sleep(0.01)
    fail("echod is ready or exits within %ss" % timeout, "ready or exit",
         "neither; log:\n" + d.stderr())


# ---------------------------------------------------------------- workload

def _prefix_echo(addr, family, data, timeout=3, proxy=False):
    """Sends data (after a PROXY v1 header if proxy), half-closes, reads to
    EOF or error. Returns what came back; it must be a prefix of data."""
    got = bytearray()
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(addr)
            if proxy:
                s.sendall(b"PROXY TCP4 127.0.0.9 127.0.0.1 4000 7\r\n")
            sent = 0
            s.setblocking(False)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                w = [s] if sent < len(data) else []
                r, w, _ = select.select([s], w, [], 0.2)
                if w:
                    try:
                        sent += s.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                    if sent == len(data):
                        s.shutdown(socket.SHUT_WR)
                if r:
                    try:
                        chunk = s.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        break
                    got += chunk
    except OSError:
        pass
    check(data.startswith(bytes(got)),
          "what came back is a prefix of what was sent (%d of %d bytes back)" % (len(got), len(data)))
    return bytes(got)


def _slow_reader(addr, family, data, timeout=5):
    """A client that sends more than echod buffers before it reads: echod
    waits for it (backpressure), then it reads everything."""
    got = bytearray()
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(timeout)
            s.connect(addr)
            s.setblocking(False)
            sent = 0
            deadline = time.monotonic() + timeout
            while sent < len(data) and time.monotonic() < deadline:
                _, w, _ = select.select([], [s], [], 0.2)
                if not w:
                    break  # echod holds what it can: now read
                try:
                    sent += s.send(data[sent:sent + 65536])
                except BlockingIOError:
                    pass
            while len(got) < len(data) and time.monotonic() < deadline:
                r, w, _ = select.select([s], [s] if sent < len(data) else [], [], 0.2)
                if w:
                    try:
                        sent += s.send(data[sent:sent + 65536])
                    except BlockingIOError:
                        pass
                if r:
                    try:
                        chunk = s.recv(1 << 20)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        break
                    got += chunk
    except OSError:
        pass
    check(data.startswith(bytes(got)), "a slow reader gets a prefix of what it sent",
          "a prefix", "%d bytes" % len(got))


def _reset_mid_write(addr, family):
    """A client that vanishes (RST) with its echo unread."""
    try:
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(3)
            s.connect(addr)
            s.sendall(harness.payload(100 * 1024, seed=4))
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass


def _udp(addr, datagrams, timeout=1.0):
    """Sends the datagrams; each reply must be one of them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for dg in datagrams:
            s.sendto(dg, addr)
        n = 0
        deadline = time.monotonic() + timeout
        while n < len(datagrams) and time.monotonic() < deadline:
            r, _, _ = select.select([s], [], [], max(0.0, deadline - time.monotonic()))
            if not r:
                break
            got = s.recv(65536)
            check(got in datagrams, "a UDP reply is one of the datagrams sent", datagrams, got)
            n += 1
        return n


def _scrape(addr, timeout=3):
    try:
        with socket.create_connection(addr, timeout=timeout) as s:
            s.sendall(GET)
            out = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out
                out += chunk
    except OSError:
        return None


def plain_listener(d):
    """The plain TCP listener; None if its name is not known (a fault in
    getsockname names it `fd N`)."""
    ls = [li for li in d.listeners if li.kind == "tcp" and li.address[0] == "127.0.0.1"]
    return ls[0] if ls else None


def workload(d):
    """What the sweep runs against an echod that may lose what a fault hit."""
    tcp = plain_listener(d)
    if not tcp or len([li for li in d.listeners if li.kind != "unix"]) < 5:
        return  # a listener is unnamed: recovered() checks what it can
    small = b"hello \x00\xff echod\n"
    bulk = harness.payload(300 * 1024, seed=7)
    _prefix_echo(tcp.address, tcp.family, small)
    _prefix_echo(tcp.address, tcp.family, bulk)
    proxy = [li for li in d.listeners if li.kind == "tcp" and li.address[0] == "127.0.0.2"][0]
    _prefix_echo(proxy.address, proxy.family, small, proxy=True)
    for li in d.listeners:
        if li.kind == "unix":
            _prefix_echo(li.address, socket.AF_UNIX, harness.payload(80 * 1024, seed=6))
    _slow_reader(tcp.address, tcp.family, harness.payload(400 * 1024, seed=3))
    _reset_mid_write(tcp.address, tcp.family)
    udp = [li for li in d.listeners if li.kind == "udp" and li.family == socket.AF_INET][0]
    _udp(udp.address, [b"dgram %d" % i for i in range(6)])
    metrics = d.metrics_address()
    if metrics:
        _scrape(metrics)
    if d.alive():
        since = d.mark()
        d.signal(signal.SIGUSR1)
        d.errlog.wait(r"^echod: stats:", 5, since)
    if d.alive():
        since = d.mark()
        d.signal(signal.SIGHUP)
        d.errlog.wait(r"^echod: (configuration reloaded|reload)", 5, since)


def recovered(d, what):
    """After the fault, a fresh client gets its exact echo, and SIGTERM
    ends echod with status 0. (If this run makes fewer calls than the
    counting run did, the fault may hit this client: then the next one.)"""
    d.check_alive(what + ": echod keeps running")
    tcp = plain_listener(d)
    if not tcp:
        check(d.find_log(r"^echod: listening on fd \d+ "), what + ": an unnamed listener",
              "`listening on fd N`", d.stderr())
        d.stop()
        return
    data = harness.payload(100 * 1024, seed=11)
    for attempt in range(2):
        since = d.mark()
        got = _prefix_echo(tcp.address, tcp.family, data, timeout=10)
        if got == data or attempt or not d.errlog.wait(INJECTED.pattern, 3, since):
            break
    check(got == data, what + ": a client after the fault gets an exact echo",
          "%d bytes, sha256 %s" % (len(data), harness.sha256(data)),
          "%d bytes, sha256 %s" % (len(got), harness.sha256(got)))
    d.stop()


def check_refused_start(d, what):
    """echod exited before it was ready: a clean refusal, with a reason."""
    d.check_sanitizers()
    rc = d.rc
    check(rc in (harness.EXIT_FAILURE, harness.EXIT_CONFIG),
          what + ": echod that cannot start exits with 1 or 78",
          "1 or 78", "%s%s\n%s" % (rc, " (killed by a signal)" if rc < 0 else "", d.stderr()))
    lines = d.log()
    at = [i for i, line in enumerate(lines) if INJECTED.match(line)]
    check(at and any(line.startswith("echod: ") for line in lines[at[0] + 1:]),
          what + ": the fault is followed by a line that says what failed",
          "an `echod: ...` line", d.stderr())


def count_calls(func):
    """How many times the workload calls func."""
    with sweep_daemon("%s=EIO@999999999" % func, count=True) as d:
        check(start_or_exit(d), "echod starts under the injector (no fault)", "ready", d.stderr())
        workload(d)
        recovered(d, "no fault")
        if func in ("malloc", "calloc", "realloc") and d.find_log(r"^inject: allocations not"):
            shutil.rmtree(d.tmpdir, ignore_errors=True)
            raise harness.Skip("the injector leaves allocations alone under AddressSanitizer")
        for line in d.log():
            m = re.match(r"^inject: %s calls (\d+)$" % func, line)
            if m:
                shutil.rmtree(d.tmpdir, ignore_errors=True)
                return int(m.group(1))
    fail("the injector reports the calls of %s" % func, "inject: %s calls N" % func, d.stderr())


# Which errno each function fails with in the sweep: one the kernel or
# libc really returns for it. epoll_wait gets EINTR: its other errors are
# programming errors, after which echod exits with status 1.
SWEEP = [
    ("malloc", "ENOMEM"), ("calloc", "ENOMEM"), ("realloc", "ENOMEM"),
    ("socket", "EMFILE"), ("bind", "EADDRINUSE"), ("listen", "EADDRINUSE"),
    ("setsockopt", "ENOPROTOOPT"), ("getsockname", "ENOBUFS"),
    ("epoll_create1", "EMFILE"), ("epoll_ctl", "ENOMEM"), ("epoll_wait", "EINTR"),
    ("signalfd", "ENOMEM"), ("sigprocmask", "EINVAL"), ("pipe2", "EMFILE"),
    ("splice", "ENOMEM"), ("read", "EIO"), ("recv", "ECONNRESET"), ("send", "EPIPE"),
    ("recvmmsg", "ENOMEM"), ("sendmmsg", "ENOBUFS"),
    ("fstat", "EIO"), ("open", "EACCES"), ("lstat", "EACCES"),
    ("getrandom", "ENOSYS"), ("shutdown", "ENOTCONN"),
    ("accept4", "ENOMEM"),
]
# Calls beyond this many are sampled, evenly: the workload's count of
# recv or epoll_wait calls would make a case too long for its worth.
SWEEP_CALLS_MAX = 16


def sweep(func, err):
    """Fails call 1, then 2, ... of func (one per run of echod)."""
    calls = count_calls(func)
    check(calls > 0, "the workload calls %s" % func, "at least once", calls)
    picks = list(range(1, calls + 1))
    if len(picks) > SWEEP_CALLS_MAX:
        step = len(picks) / SWEEP_CALLS_MAX
        picks = sorted({picks[int(i * step)] for i in range(SWEEP_CALLS_MAX)} | {calls})
    outcomes = {"refused start": 0, "served": 0, "not reached": 0}
    for n in picks:
        what = "%s call %d of %d fails with %s" % (func, n, calls, err)
        with sweep_daemon("%s=%s@%d" % (func, err, n)) as d:
            try:
                if not start_or_exit(d):
                    check_refused_start(d, what)
                    outcomes["refused start"] += 1
                    continue
                workload(d)
                recovered(d, what)
                # The calls vary a little from run to run (how many
                # reads a burst takes): the last ones may not come.
                outcomes["served" if injected(d) else "not reached"] += 1
            finally:
                shutil.rmtree(d.tmpdir, ignore_errors=True)
    print("%s: %d calls, %d runs: %s" % (func, calls, len(picks), outcomes))
    # How often a burst is read or written varies with timing (under a
    # sanitizer most of all): the last calls may not come in every run.
    check(outcomes["not reached"] < len(picks), "the sweep's faults were reached",
          "at least one", outcomes)


def _sweep_case(func, err):
    def run():
        sweep(func, err)
    run.__name__ = "sweep_" + func
    run.__doc__ = "Each call of %s fails with %s in turn." % (func, err)
    return harness.case("sweep_" + func, timeout=240)(run)


for _func, _err in SWEEP:
    _sweep_case(_func, _err)


# ---------------------------------------------------------------- activated sockets

ACTIVATED_NAMES = "echo:echo:proxy:metrics"


def activated_run(spec, count=False):
    """echod given a TCP, a UDP, a PROXY and a metrics socket the way
    systemd passes them, under the injector, through the workload.
    Returns ('refused start' | 'served' | 'not reached', stderr)."""
    require_inject()
    service.need_systemd_build()
    socks = [harness.listening_socket(), harness.listening_socket(kind=socket.SOCK_DGRAM),
             harness.listening_socket(), harness.listening_socket()]
    env = fault_env(spec, count)
    env["LISTEN_FDNAMES"] = ACTIVATED_NAMES
    proc = service.start_echod([], env=env, fds=socks)
    try:
        ready = proc.err.wait(READY, 20)
        if not ready:
            rc = proc.wait()
            err = proc.stderr_text()
            harness.check_no_sanitizer_report(err, "echod")
            check(rc in (harness.EXIT_FAILURE, harness.EXIT_CONFIG),
                  spec + ": echod that cannot start exits with 1 or 78", "1 or 78",
                  "%s\n%s" % (rc, err))
            check(re.search(r"^inject: .*\n(.*\n)*echod: ", err + "\n", re.M),
                  spec + ": the fault is followed by a line that says what failed",
                  "an `echod: ...` line", err)
            return "refused start", err
        tcp, udp, proxy, metrics = (s.getsockname()[:2] for s in socks)
        small = b"activated \x00\xff\n"
        _prefix_echo(tcp, socket.AF_INET, small)
        _prefix_echo(tcp, socket.AF_INET, harness.payload(200 * 1024, seed=5))
        _prefix_echo(proxy, socket.AF_INET, small, proxy=True)
        _udp(udp, [b"activated %d" % i for i in range(4)])
        _scrape(metrics)
        data = harness.payload(64 * 1024, seed=9)
        for attempt in range(2):
            n = len(proc.err.snapshot())
            got = _prefix_echo(tcp, socket.AF_INET, data, timeout=10)
            if got == data or attempt or not proc.err.wait(INJECTED.pattern, 3, since=n):
                break
        check(got == data, spec + ": a client after the fault gets an exact echo",
              harness.sha256(data), harness.sha256(got))
        service.stop_echod(proc)
        err = proc.stderr_text()
        harness.check_no_sanitizer_report(err, "echod")
        reached = re.search(r"^inject: \w+ call \d+ fails", err, re.M)
        return ("served" if reached else "not reached"), err
    finally:
        proc.kill()
        for s in socks:
            s.close()


@harness.case(timeout=300)
def sweep_activated():
    """Each call, in turn, of the functions that adopt passed sockets
    (getsockopt, fcntl, setsockopt, getsockname, fstat, epoll_ctl, and
    the allocations) fails: echod refuses to start with a message naming
    the fd, or serves every socket it was given."""
    funcs = [("getsockopt", "ENOPROTOOPT"), ("fcntl", "EBADF"), ("setsockopt", "ENOPROTOOPT"),
             ("getsockname", "ENOBUFS"), ("fstat", "EIO"), ("epoll_ctl", "ENOMEM"),
             ("malloc", "ENOMEM"), ("calloc", "ENOMEM")]
    for func, err in funcs:
        _, log = activated_run("%s=EIO@999999999" % func, count=True)
        if func in ("malloc", "calloc") and "allocations not injected" in log:
            continue
        m = re.search(r"^inject: %s calls (\d+)$" % func, log, re.M)
        check(m, "the injector counts %s" % func, "a count", log)
        calls = min(int(m.group(1)), SWEEP_CALLS_MAX)
        outcomes = {}
        for n in range(1, calls + 1):
            outcome, _ = activated_run("%s=%s@%d" % (func, err, n))
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        print("%s: %d calls: %s" % (func, calls, outcomes))


# ---------------------------------------------------------------- one fault each

@harness.case()
def accept_transient():
    """ECONNABORTED, EPROTO, EPERM and EINTR from accept4: the next client
    in the queue is taken at once, nothing is logged, nobody is lost."""
    spec = "accept4=ECONNABORTED@1,accept4=EPROTO@2,accept4=EPERM@3,accept4=EINTR@4"
    with faulty(spec) as d:
        d.start()
        for i in range(4):
            harness.check_tcp_echo(d.listener().address, harness.payload(1000, seed=i))
        check_equal("accept faults reached", 4, len(d.errlog.wait(INJECTED.pattern, 5, count=4)))
        check(not d.find_log(r"^echod: .*accept"), "transient accept errors are not logged",
              "no `accept` line", d.stderr())
        d.stop()


@harness.case()
def accept_out_of_memory():
    """ENOBUFS and ENOMEM from accept4: a warning that says memory (not file
    descriptors), accepts pause, and resume by themselves with no
    connection open to end."""
    for err in ("ENOBUFS", "ENOMEM"):
        with faulty("accept4=%s@1" % err) as d:
            d.start()
            harness.check_tcp_echo(d.listener().address, b"after a pause")
            d.wait_log(r"^echod: cannot accept on \S+: .*; out of memory, pausing accepts")
            check(not d.find_log(r"out of file descriptors"),
                  "%s is not reported as running out of fds" % err, "no such line", d.stderr())
            d.stop()
    with faulty("accept4=EMFILE@1") as d:
        d.start()
        harness.check_tcp_echo(d.listener().address, b"after a pause")
        d.wait_log(r"^echod: cannot accept on \S+: .*; out of file descriptors, pausing")
        d.stop()


@harness.case()
def accept_error_retried():
    """Another accept error (ENETDOWN): one line, a retry 1 s later, the
    client served; a second failure inside the log interval is counted and
    reported with the next line."""
    with faulty("accept4=ENETDOWN@1x2") as d:
        d.start()
        harness.check_tcp_echo(d.listener().address, b"after two retries")
        d.wait_log(r"^echod: accept on \S+ failed: .*; retrying in 1000 ms$")
        check_equal("failure lines (the second is held back)", 1,
                    len(d.find_log(r"accept on .* failed")))
        d.stop()


@harness.case()
def accept_error_final():
    """EINVAL from accept4 on one listener: that listener is dropped with
    one line; the other one and echod go on."""
    with faulty("accept4=EINVAL@1", listen=("127.0.0.1:0", "127.0.0.1:0")) as d:
        d.start()
        first, second = d.listener("tcp", 0), d.listener("tcp", 1)
        with socket.create_connection(first.address, timeout=5) as c:
            d.wait_log(r"^echod: accept on \S+ failed: Invalid argument; no longer accepting on it$")
            c.close()
        harness.check_tcp_echo(second.address, b"the other listener")
        d.check_alive()
        d.stop()


# The timer heap is echod's only realloc: it starts at 64 timers, and
# its first growth asks for 128 pointers.
TIMER_HEAP_GROWTH = "realloc=ENOMEM@1x0:%d" % (128 * 8)


def skip_without_allocation_faults(d):
    # The injector says so only at exit: ask its build instead.
    with open(INJECT, "rb") as f:
        if b"__asan_init" in f.read():
            raise harness.Skip("the injector leaves allocations alone under AddressSanitizer")


def _echo_or_refused(c, data):
    """The exact echo of data, or None if echod closed the connection."""
    try:
        c.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = c.recv(65536)
            if not chunk:
                break
            got += chunk
    except (ConnectionResetError, BrokenPipeError):
        return None
    if not got:
        return None
    check_equal("what a connection with a timer gets back", data, got)
    return got


@harness.case()
def timer_heap_full():
    """The timer heap cannot grow past its first 64 timers. With
    idle_timeout on, every connection needs one: those that cannot get it
    are closed at once, the others get exact echoes, and once some close
    the next client is served again."""
    with faulty(TIMER_HEAP_GROWTH, config="idle_timeout = 1min\n") as d:
        d.start()
        skip_without_allocation_faults(d)
        served, refused = [], 0
        for i in range(100):
            c = socket.create_connection(d.listener().address, timeout=5)
            if _echo_or_refused(c, harness.payload(300, seed=i)) is None:
                refused += 1
                c.close()
            else:
                served.append(c)
        print("served %d, refused %d" % (len(served), refused))
        check(1 <= len(served) <= 64, "connections that got a timer are served",
              "1 to 64", len(served))
        check_equal("connections without a timer are closed", 100 - len(served), refused)
        check(injected(d), "the heap's growth failed", "inject: realloc ... fails", d.stderr())
        for c in served:
            c.close()
        d.wait_stats(lambda s: s[0] == 0, "every connection closed")
        harness.check_tcp_echo(d.listener().address, b"a timer again")
        d.stop()


@harness.case()
def timer_heap_full_accept_errors():
    """Accept errors while no retry timer can be had: after ENETDOWN the
    next accept comes at once (nothing would wake a paused listener);
    after EMFILE the listener waits for a connection to end, and the
    client held in the queue meanwhile is then served. 64 clients of a
    first listener fill the heap; the faults are on the second one's
    accepts."""
    listen = ("127.0.0.1:0", "127.0.0.1:0")
    config = "idle_timeout = 1min\n"
    # Listeners open in the same order every time: a first run tells the
    # second listener's descriptor, the faults' ARG.
    with faulty("accept4=EIO@999999999", config=config, listen=listen) as d:
        d.start()
        fd = kernel.listener_fd(d.pid, d.listener("tcp", 1).port)
        check(fd is not None, "the second listener's descriptor is found", "a descriptor", None)
        d.stop()
    # Each spec counts the calls the ones before it let through: the
    # EMFILE spec's first call is the second accept.
    spec = TIMER_HEAP_GROWTH + ",accept4=ENETDOWN@1:%d,accept4=EMFILE@1:%d" % (fd, fd)
    with faulty(spec, config=config, listen=listen) as d:
        d.start()
        skip_without_allocation_faults(d)
        check_equal("the second listener's descriptor", fd,
                    kernel.listener_fd(d.pid, d.listener("tcp", 1).port))
        served = []
        for i in range(64):
            c = socket.create_connection(d.listener("tcp", 0).address, timeout=5)
            check(_echo_or_refused(c, harness.payload(300, seed=i)), "connection %d is served" % i,
                  "an echo", "closed")
            served.append(c)
        held = socket.create_connection(d.listener("tcp", 1).address, timeout=10)
        data = harness.payload(5000, seed=99)
        held.sendall(data)
        d.wait_log(r"^echod: accept on \S+ failed: .*; retrying in 1000 ms$")
        d.wait_log(r"^echod: cannot accept on \S+: .*; out of file descriptors, pausing accepts")
        served.pop().close()
        got = b""
        while len(got) < len(data):
            chunk = held.recv(65536)
            check(chunk, "the held client is served once a connection ends", "its echo", got)
            got += chunk
        check_equal("the held client's echo", data, got)
        held.close()
        for c in served:
            c.close()
        d.stop()


@harness.case()
def timer_heap_full_at_shutdown():
    """Without idle_timeout, 100 connections need no timer until SIGTERM,
    when each needs its drain timer: those that cannot get one are closed
    at once, the others after the quiet second; every client has had its
    exact echo and sees EOF, and echod exits 0."""
    with faulty(TIMER_HEAP_GROWTH) as d:
        d.start()
        skip_without_allocation_faults(d)
        clients = []
        for i in range(100):
            c = socket.create_connection(d.listener().address, timeout=10)
            check(_echo_or_refused(c, harness.payload(300, seed=i)), "connection %d is served" % i,
                  "an echo", "closed")
            clients.append(c)
        d.signal(signal.SIGTERM)
        for i, c in enumerate(clients):
            check_equal("connection %d ends with EOF" % i, b"", c.recv(16))
            c.close()
        check(injected(d), "the heap's growth failed at shutdown", "inject: realloc ... fails",
              d.stderr())
        check_equal("exit status", 0, d.wait_exit(20))
        d.check_sanitizers()


def startup_calls(func, arg="", **kw):
    """How many times echod calls func (those matching arg) until it is
    ready, and then on SIGTERM."""
    with faulty("%s=EIO@999999999%s" % (func, arg), count=True, **kw) as d:
        d.start()
        d.stop()
        m = d.find_log(r"^inject: %s calls (\d+)$" % func)
        check(m, "the injector counts %s" % func, "a count", d.stderr())
        return int(m[0].split()[-1])


@harness.case()
def reload_config_unreadable():
    """The config file cannot be opened, stat'ed or read on SIGHUP: the
    reload is refused with a line naming the file and the cause, the old
    settings stay, clients are served."""
    for func, arg, err, cause in (("open", "", "EACCES", "Permission denied"),
                                  ("fstat", "", "EIO", "Input/output error"),
                                  ("read", ":reg", "EIO", "Input/output error")):
        # The first call after start is the reload's (SIGHUP and a stop
        # make no such call: see startup_calls).
        n = startup_calls(func, arg, config="idle_timeout = 0\n")
        spec = "%s=%s@%d%s" % (func, err, n + 1, arg)
        with faulty(spec, config="idle_timeout = 0\n") as d:
            d.start()
            since = d.mark()
            d.write_config("idle_timeout = 5s\n")
            d.signal(signal.SIGHUP)
            d.wait_log(r"^echod: .*echod\.conf.*%s" % cause, since=since)
            check_reached(d, spec)
            check(not d.find_log(r"configuration reloaded", since), spec + ": no reload",
                  "no `configuration reloaded`", d.stderr())
            harness.check_tcp_echo(d.listener().address, b"after a failed reload")
            # The old settings: a 5 s idle timeout would close this one.
            d.stop()


@harness.case()
def udp_send_refused():
    """sendmmsg fails: with EAGAIN the replies of that batch are dropped
    (UDP may), with EIO on coalesced replies echod sends them one by one
    and stops coalescing; every datagram after is answered."""
    for err in ("EAGAIN", "EIO", "EMSGSIZE"):
        with faulty("sendmmsg=%s@1" % err, listen=("udp:127.0.0.1:0",), log_level="debug") as d:
            d.start()
            addr = d.listener("udp").address
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                # Same-size datagrams from one source: the batch coalesces.
                for i in range(8):
                    s.sendto(b"burst %02d" % i, addr)
                got = set()
                deadline = time.monotonic() + 2
                while time.monotonic() < deadline:
                    r, _, _ = select.select([s], [], [], 0.2)
                    if r:
                        got.add(s.recv(100))
                    elif got or err == "EAGAIN":
                        break
            check_reached(d, "sendmmsg " + err)
            sent = {b"burst %02d" % i for i in range(8)}
            if err != "EAGAIN" and d.errlog.wait(r"coalesced replies refused", 1):
                check_equal("replies of the refused batch, sent one by one", sent, got)
            elif err != "EAGAIN":
                # The first datagram came alone (a slow machine): its one
                # reply is what was refused.
                check(len(sent - got) <= 1 and got <= sent,
                      "replies after one refused send", "all but one", got)
            harness.check_udp_echo(addr, b"after the refusal")
            d.stop()


@harness.case()
def udp_receive_error():
    """recvmmsg fails (ENOMEM): logged at debug, and the next datagrams are
    answered."""
    with faulty("recvmmsg=ENOMEM@1", listen=("udp:127.0.0.1:0",), log_level="debug") as d:
        d.start()
        addr = d.listener("udp").address
        harness.check_udp_echo(addr, b"after a receive error")
        d.wait_log(r"^echod: receive on \S+ failed: Cannot allocate memory$")
        d.stop()


@harness.case()
def scraper_io_errors():
    """A scraper whose recv or send fails is closed; the next scrape is
    served. An accept error on the metrics listener is retried, a final
    one drops only that listener."""
    # epoll_ctl's argument is the operation: 3 is EPOLL_CTL_MOD, the
    # scraper waiting for room to write.
    for spec in ("recv=ECONNRESET@1", "send=EPIPE@1", "shutdown=ENOTCONN@1",
                 "accept4=ENETDOWN@1", "accept4=EPROTO@1", "accept4=EINTR@1", "recv=EINTR@1",
                 "send=EINTR@1", "send=EAGAIN@1", "send=EAGAIN@1,epoll_ctl=ENOMEM@1:3",
                 "send=EAGAIN@1,epoll_ctl=ENOMEM@2:3"):
        with faulty(spec, config="metrics = 127.0.0.1:0\n",
                    listen=("unix:@echod-faults-%d" % os.getpid(),)) as d:
            d.start()
            addr = d.metrics_address()
            first = _scrape(addr)
            check(first is None or first.startswith(b"HTTP/1.0 200") or first == b"",
                  spec + ": the scrape the fault hit gets a response or a close", "", first)
            deadline = time.monotonic() + 5
            ok = None
            while time.monotonic() < deadline:
                ok = _scrape(addr)
                if ok and ok.startswith(b"HTTP/1.0 200"):
                    break
                time.sleep(0.1)
            check(ok and ok.startswith(b"HTTP/1.0 200"), spec + ": the next scrape is served",
                  "HTTP/1.0 200", ok)
            check_reached(d, spec)
            d.stop()
    with faulty("accept4=EINVAL@1", config="metrics = 127.0.0.1:0\n", listen=("127.0.0.1:0",)) as d:
        d.start()
        _scrape(d.metrics_address(), timeout=1)
        d.wait_log(r"^echod: accept on \S+ failed: Invalid argument; no longer serving metrics on it$")
        harness.check_tcp_echo(d.listener().address, b"echo goes on")
        d.stop()


@harness.case()
def startup_failures():
    """What echod cannot do without at start: each refusal exits 1 with a
    line that says what failed."""
    for spec, pattern in (
            ("epoll_create1=EMFILE@1", r"cannot create the event loop"),
            ("signalfd=ENOMEM@1", r"cannot set up signal handling"),
            ("sigprocmask=EINVAL@1", r"cannot set up signal handling"),
            ("setsockopt=ENOPROTOOPT@1", r"cannot listen on 127\.0\.0\.1:0"),
            ("listen=EADDRINUSE@1", r"cannot listen on 127\.0\.0\.1:0"),
            ("epoll_wait=EBADF@1", r"event loop failed")):
        with faulty(spec) as d:
            if start_or_exit(d) and "epoll_wait" not in spec:
                fail(spec + ": echod refuses to start", "exit 1", d.stderr())
            d.wait_exit(10)
            check_equal(spec + ": exit status", harness.EXIT_FAILURE, d.rc)
            d.wait_log(r"^echod: .*" + pattern)


@harness.case()
def no_random_seed():
    """getrandom fails: the per-source tables use a fixed key, with a
    warning, and still count."""
    with faulty("getrandom=ENOSYS@1x0", config="max_connections_per_source = 1\n") as d:
        d.start()
        d.wait_log(r"^echod: no random seed for the per-source tables")
        with socket.create_connection(d.listener().address, timeout=5) as first:
            harness.echo(first, b"the one allowed")
            with socket.create_connection(d.listener().address, timeout=5) as second:
                harness.expect_eof(second, what="the second connection from one source")
        d.stop()


@harness.case()
def log_write_errors():
    """The log cannot be written (EAGAIN, EIO): those lines are dropped
    and their number said in the next line that is written; EINTR is
    retried and loses nothing. echod serves on."""
    listen = ("127.0.0.1:0", "127.0.0.2:0", "127.0.0.3:0", "127.0.0.4:0")
    for spec, dropped in (("write=EAGAIN@2x2", 2), ("write=EIO@2", 1), ("write=EINTR@2", 0)):
        with faulty(spec, listen=listen) as d:
            d.start()
            harness.check_tcp_echo(d.listener().address, b"with a lossy log")
            check_equal(spec + ": listening lines written", len(listen) - dropped,
                        len(d.find_log(r"^echod: listening on")))
            if dropped:
                d.wait_log(r"^echod: %d log lines dropped \(the log was not writable\)$" % dropped)
            else:
                check(not d.find_log(r"dropped"), spec + ": nothing dropped", "", d.stderr())
            d.stop()


@harness.case(timeout=90)
def accept_error_log_limited():
    """An accept error that never ends (every call fails, retried each
    second) is logged once per 10 s, the next line saying how many were
    not; running out of memory is warned about as sparingly. echod stays
    responsive to signals throughout."""
    with faulty("accept4=ENETDOWN@1x0") as err, faulty("accept4=ENOBUFS@1x0") as mem, \
            faulty("accept4=ENETDOWN@1x0", config="metrics = 127.0.0.1:0\n",
                   listen=("unix:@echod-faults-m%d" % os.getpid(),)) as met:
        for d in (err, mem, met):
            d.start()
        # A client in each queue: every retry tries it and fails.
        for addr in (err.listener().address, mem.listener().address, met.metrics_address()):
            socket.create_connection(addr, timeout=5)
        err.wait_log(r"^echod: accept on \S+ failed: Network is down; retrying in 1000 ms "
                     r"\((\d+) more failures not logged\)$", timeout=20)
        lines = err.find_log(r"accept on .* failed")
        check(len(lines) == 2, "failure lines in 10 s of failures", 2, lines)
        warned = mem.find_log(r"out of memory, pausing accepts")
        check(1 <= len(warned) <= 2, "out-of-memory warnings in 10 s", "1 or 2", warned)
        check(len(mem.errlog.wait(INJECTED.pattern, 1, count=5)) >= 5,
              "accepts retried while out of memory", ">= 5 faults", mem.stderr())
        lines = met.find_log(r"accept on .* failed: Network is down; retrying")
        check(1 <= len(lines) <= 2, "metrics accept failure lines in 10 s", "1 or 2", lines)
        for d in (err, mem, met):
            d.stop()


if __name__ == "__main__":
    harness.main()
