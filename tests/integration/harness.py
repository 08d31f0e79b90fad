"""Integration test harness for echod: start the real binary on loopback,
talk to it, watch its log, measure it, and always kill it at the end.

Standard library only. A test file defines its cases as functions and ends
with `harness.main(CASES)`; `python3 FILE CASE` runs one case (that is what
meson does, one test per case), `python3 FILE` runs them all.

Every wait is bounded. A failure prints what was expected and what came
back, and the tail of the daemon's log.
"""

import atexit
import ctypes
import fcntl
import hashlib
import os
import re
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
import traceback

ECHOD = os.environ.get("ECHOD", "")

# Exit status of the contract.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78
EXIT_SKIP = 77

CLK_TCK = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024

# Variables that would change how the daemon starts (socket activation,
# readiness, journal logging); tests want a plain foreground daemon.
_SERVICE_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
                "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:", "ThreadSanitizer", "MemorySanitizer")


class Failure(Exception):
    """A check did not hold; the message says what was expected and got."""


class Skip(Exception):
    """The case cannot run on this machine."""


def fail(what, expected, got):
    raise Failure("%s\n  expected: %s\n       got: %s" % (what, expected, got))


def check(cond, what, expected, got):
    if not cond:
        fail(what, expected, got)


def check_equal(what, expected, got):
    if expected != got:
        fail(what, _show(expected), _show(got))


def _show(value, limit=48):
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        s = repr(b[:limit])
        return "%d bytes %s%s" % (len(b), s, " ..." if len(b) > limit else "")
    s = repr(value)
    return s if len(s) <= 800 else s[:800] + " ..."


def check_bytes(what, expected, got):
    """Compares byte strings; on mismatch names the first differing offset."""
    expected = bytes(expected)
    got = bytes(got)
    if expected == got:
        return
    n = min(len(expected), len(got))
    off = next((i for i in range(n) if expected[i] != got[i]), n)
    lo = max(0, off - 8)
    fail("%s (first difference at byte %d)" % (what, off),
         "%d bytes, around the difference: %r" % (len(expected), expected[lo:off + 16]),
         "%d bytes, around the difference: %r" % (len(got), got[lo:off + 16]))


def upper(data):
    """What `transform = upper` must send back: a-z -> A-Z, nothing else changed."""
    return bytes(data).translate(_UPPER_TABLE)


_UPPER_TABLE = bytes(range(256)).translate(
    bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def raise_nofile():
    """Raises this process's RLIMIT_NOFILE soft limit to the hard limit
    (daemons started afterwards inherit it). Returns the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def have_ipv6_loopback():
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- processes

_live = []  # every Daemon started and not yet reaped, killed at exit
_started = []  # daemons started by the current case, for the failure report


def _kill_all():
    for d in list(_live):
        d.kill()


atexit.register(_kill_all)

try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover
    _libc = None
_PR_SET_PDEATHSIG = 1


def _child_setup(nofile):
    def setup():
        # If the test process dies (meson's timeout kills it), so does the daemon.
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        # Python ignores SIGPIPE and the child would inherit that; echod must
        # cope with SIGPIPE's default disposition itself.
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    return setup


def daemon_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in _SERVICE_ENV}
    if extra:
        env.update(extra)
    return env


def require_echod():
    if not ECHOD:
        raise Skip("ECHOD is not set (run through meson, or set ECHOD=path/to/echod)")
    if not os.access(ECHOD, os.X_OK):
        raise Failure("ECHOD=%s is not an executable file" % ECHOD)


class Result:
    def __init__(self, args, rc, stdout, stderr):
        self.args, self.rc, self.stdout, self.stderr = args, rc, stdout, stderr

    def describe(self):
        return "`%s` exited %s\n--- stdout:\n%s--- stderr:\n%s---" % (
            " ".join(self.args), self.rc, self.stdout, self.stderr)


def run(args, timeout=15, nofile=None):
    """Runs echod with args to completion (e.g. -t, --help, a failing start).
    The process is killed if it does not exit within timeout."""
    require_echod()
    argv = [ECHOD] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=daemon_env(),
                         preexec_fn=_child_setup(nofile))
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        raise Failure("`%s` did not exit within %ss\n--- stdout:\n%s--- stderr:\n%s---" % (
            " ".join(argv), timeout, out.decode(errors="replace"), err.decode(errors="replace")))
    r = Result(argv, p.returncode, out.decode(errors="replace"), err.decode(errors="replace"))
    check_no_sanitizer_report(r.stderr, " ".join(argv))
    return r


def check_no_sanitizer_report(stderr, who):
    for marker in SANITIZER_MARKERS:
        if marker in stderr:
            raise Failure("sanitizer report from %s:\n%s" % (who, stderr))


_LISTENING = re.compile(r"^echod: listening on (\S+) \((tcp|udp|unix)\)$")


class Listener:
    def __init__(self, text, kind):
        self.text, self.kind = text, kind
        if text.startswith("unix:"):
            self.family, self.address = socket.AF_UNIX, text[5:]
            if self.address.startswith("@"):
                self.address = "\0" + self.address[1:]
        elif text.startswith("["):
            host, port = text[1:].rsplit("]:", 1)
            self.family, self.address = socket.AF_INET6, (host, int(port))
        else:
            host, port = text.rsplit(":", 1)
            self.family, self.address = socket.AF_INET, (host, int(port))

    @property
    def port(self):
        return self.address[1]

    def __repr__(self):
        return "%s (%s)" % (self.text, self.kind)


class Daemon:
    """One echod process. Use as a context manager: it is always killed.

    config: text of the config file (written to the temp dir, passed with -c;
            None = an empty file, so that the machine's own config never leaks in).
    listen: -l addresses (None = none on the command line).
    """

    def __init__(self, args=(), config="", listen=("127.0.0.1:0",), nofile=None,
                 log_level=None, tmpdir=None):
        require_echod()
        self._own_tmp = None
        if tmpdir is None:
            self._own_tmp = tempfile.TemporaryDirectory(prefix="echod-it-")
            tmpdir = self._own_tmp.name
        self.tmpdir = tmpdir
        self.config_path = os.path.join(tmpdir, "echod.conf")
        self.write_config(config if config is not None else "")
        argv = [ECHOD, "-c", self.config_path]
        for a in listen or ():
            argv += ["-l", a]
        if log_level:
            argv += ["--log-level=" + log_level]
        argv += list(args)
        self.argv = argv
        self.nofile = nofile
        self.proc = None
        self.lines = []
        self.stdout_chunks = []
        self._cond = threading.Condition()
        self._eof = False
        self.listeners = []
        self.rc = None

    def write_config(self, text):
        """(Re)writes the config file atomically (a reload never sees half of it)."""
        tmp = self.config_path + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)

    # -- life cycle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.kill()
        if self._own_tmp is not None:
            self._own_tmp.cleanup()
        return False

    def start(self, ready=True, timeout=20):
        """Starts echod; with ready, waits for `echod: ready` and learns the
        listeners from the `listening on` lines before it."""
        _started.append(self)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=daemon_env(), preexec_fn=_child_setup(self.nofile),
                                     cwd=self.tmpdir)
        _live.append(self)
        threading.Thread(target=self._read_stderr, daemon=True).start()
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if ready:
            self.wait_log(r"^echod: ready$", timeout=timeout)
            self.listeners = []
            for line in self.log():
                m = _LISTENING.match(line)
                if m:
                    self.listeners.append(Listener(m.group(1), m.group(2)))
            check(self.listeners, "echod logged its listeners before `ready`",
                  "at least one `echod: listening on ADDR (KIND)` line", self.log())
        return self

    def _read_stderr(self):
        for raw in self.proc.stderr:
            with self._cond:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.stdout_chunks.append(raw)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """SIGKILL and reap (idempotent)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                self.proc.kill()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        if self in _live:
            _live.remove(self)

    def signal(self, sig):
        check(self.alive(), "echod is running before sending %s" % signal.Signals(sig).name,
              "a running process", "it exited with %s" % self.proc.returncode)
        os.kill(self.proc.pid, sig)

    def wait_exit(self, timeout):
        """Waits for the process to exit; returns its status (negative = signal)."""
        try:
            self.rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("echod exits within %ss" % timeout, "exit", "still running")
        # let the reader threads take the last lines
        with self._cond:
            self._cond.wait_for(lambda: self._eof, timeout=5)
        if self in _live:
            _live.remove(self)
        return self.rc

    def stop(self, sig=None, timeout=20, expect_rc=EXIT_OK):
        """Asks echod to exit (SIGTERM) and checks it exits with expect_rc."""
        sig = signal.SIGTERM if sig is None else sig
        self.signal(sig)
        rc = self.wait_exit(timeout)
        self.check_sanitizers()
        check(rc == expect_rc, "exit status after %s" % signal.Signals(sig).name,
              expect_rc, "%s%s" % (rc, " (killed by %s)" % signal.Signals(-rc).name if rc < 0 else ""))
        return rc

    def check_alive(self, what="echod keeps running"):
        if not self.alive():
            self.wait_exit(5)
            self.check_sanitizers()
            fail(what, "a running process", "it exited with status %s" % self.rc)

    def check_sanitizers(self):
        check_no_sanitizer_report(self.stderr(), "echod")

    # -- log

    def log(self):
        with self._cond:
            return list(self.lines)

    def stderr(self):
        return "\n".join(self.log()) + "\n"

    def stdout(self):
        return b"".join(self.stdout_chunks).decode(errors="replace")

    def mark(self):
        """Index of the next log line, to wait only for lines after this point."""
        with self._cond:
            return len(self.lines)

    def wait_log(self, pattern, timeout=10, since=0):
        """Waits for a log line (from index `since`) matching the regex; returns the match."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.lines):
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        return m
                if self._eof:
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
        state = "running" if self.alive() else "exited with %s" % self.proc.poll()
        fail("a log line matching /%s/ within %ss" % (pattern, timeout), pattern,
             "no such line (echod %s); log:\n%s" % (state, "\n".join(self.lines[since:]) or "(empty)"))

    def find_log(self, pattern, since=0):
        rx = re.compile(pattern)
        return [line for line in self.log()[since:] if rx.search(line)]

    STATS_RX = (r"^echod: stats: (\d+) current, (\d+) total connections, "
                r"(\d+) bytes echoed, (\d+) accept waits, (\d+) datagrams; "
                r"refused: ((?:\w+ \d+(?:, )?)+); dropped: ((?:\w+ \d+(?:, )?)+)$")

    def stats(self, timeout=10):
        """Sends SIGUSR1 and returns (current, total, bytes, accept waits) from the stats line."""
        return self.full_stats(timeout)[0]

    def full_stats(self, timeout=10):
        """Sends SIGUSR1; returns ((current, total, bytes, accept waits),
        datagrams, {reason: count} for every refusal and drop reason)."""
        since = self.mark()
        self.signal(signal.SIGUSR1)
        m = self.wait_log(self.STATS_RX, timeout, since)
        counts = {}
        for part in (m.group(6), m.group(7)):
            for item in part.split(", "):
                name, n = item.split(" ")
                counts[name] = int(n)
        return tuple(int(x) for x in m.groups()[:4]), int(m.group(5)), counts

    def wait_stats(self, pred, what, timeout=10):
        """Asks for stats until pred(stats) holds (the daemon notices closes
        asynchronously); fails with the last stats line otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            st = self.stats()
            if pred(st):
                return st
            if time.monotonic() > deadline:
                fail("stats: " + what, what, "current=%d total=%d bytes=%d refused=%d" % st)
            time.sleep(0.05)

    # -- listeners

    def listener(self, kind="tcp", index=0):
        ls = [l for l in self.listeners if l.kind == kind]
        check(len(ls) > index, "a %s listener in the log" % kind, "`listening on ... (%s)`" % kind,
              self.listeners)
        return ls[index]

    def connect(self, kind="tcp", index=0, timeout=10, rcvbuf=None):
        return connect(self.listener(kind, index), timeout=timeout, rcvbuf=rcvbuf)

    # -- /proc

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise Failure("no VmRSS in /proc/%d/status" % self.pid)

    def cpu_seconds(self):
        """utime + stime of the daemon, in seconds."""
        with open("/proc/%d/stat" % self.pid) as f:
            stat = f.read()
        fields = stat[stat.rindex(")") + 2:].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))


# ---------------------------------------------------------------- clients

def connect(listener, timeout=10, rcvbuf=None, family=None, address=None):
    """A blocking stream socket connected to the listener (with a timeout)."""
    fam = family if family is not None else listener.family
    addr = address if address is not None else listener.address
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


_scratch = memoryview(bytearray(1 << 20))


def recv_some(sock, limit=1 << 20):
    """sock.recv() through one reused buffer: no fresh 1 MiB allocation per
    call (meson sets MALLOC_PERTURB_, which makes those cost a memset each)."""
    n = sock.recv_into(_scratch[:min(limit, len(_scratch))])
    return bytes(_scratch[:n])


def recv_exact(sock, n, timeout=10, what="echo"):
    """Receives exactly n bytes (fails on EOF, reset or timeout)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("%s: %d bytes within %ss" % (what, n, timeout), "%d bytes" % n,
                 "%d bytes, then nothing: %s" % (len(buf), _show(buf)))
        sock.settimeout(left)
        try:
            chunk = recv_some(sock, n - len(buf))
        except socket.timeout:
            continue
        except OSError as e:
            fail("%s: %d bytes" % (what, n), "%d bytes" % n,
                 "%d bytes then %s: %s" % (len(buf), e.__class__.__name__, e))
        if not chunk:
            fail("%s: %d bytes" % (what, n), "%d bytes" % n,
                 "EOF after %d bytes: %s" % (len(buf), _show(buf)))
        buf += chunk
    return bytes(buf)


def echo(sock, data, timeout=10, what="echo", expect=None):
    """Sends data (may be large: sends and receives interleaved) and checks
    that exactly expect (default: data) comes back."""
    data = bytes(data)
    expect = data if expect is None else bytes(expect)
    got = pump([(sock, data, False)], timeout=timeout, what=what)[0]
    check_bytes(what, expect, got)
    return got


def expect_eof(sock, timeout=10, what="EOF from echod"):
    """Reads until EOF; returns what came before it. Fails on timeout."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(what + " within %ss" % timeout, "EOF", "connection still open after %d bytes" % len(buf))
        sock.settimeout(left)
        try:
            chunk = recv_some(sock)
        except socket.timeout:
            continue
        except OSError as e:
            fail(what, "EOF (orderly close)", "%s: %s after %d bytes" % (e.__class__.__name__, e, len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk


def expect_nothing(sock, seconds, what):
    """Checks that nothing arrives (no data, no EOF) for `seconds`."""
    sock.settimeout(seconds)
    try:
        chunk = sock.recv(4096)
    except socket.timeout:
        return
    except OSError as e:
        fail(what, "nothing for %ss" % seconds, "%s: %s" % (e.__class__.__name__, e))
    fail(what, "nothing for %ss" % seconds, "EOF" if not chunk else _show(chunk))


def pump(jobs, timeout=30, what="echo", expect_len=None):
    """Full-duplex transfer for many connections at once, on one selector.

    jobs: list of (sock, payload, shut) where payload is bytes-like and shut
    says whether to shutdown(SHUT_WR) after the payload. Returns the bytes
    received on each connection (until len(payload) bytes, or EOF when shut).
    """
    sel = selectors.DefaultSelector()
    state = []
    for i, (sock, payload, shut) in enumerate(jobs):
        sock.setblocking(False)
        st = {"i": i, "sock": sock, "out": memoryview(payload).cast("B"), "sent": 0,
              "want": len(payload), "shut": shut, "buf": bytearray(), "done": False,
              "sent_shut": False}
        state.append(st)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    pending = len(state)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                bad = [s for s in state if not s["done"]][:5]
                fail("%s: all %d connections done within %ss" % (what, len(state), timeout),
                     "every payload echoed",
                     "%d unfinished, e.g. %s" % (pending, ["#%d sent %d/%d got %d" % (
                         s["i"], s["sent"], len(s["out"]), len(s["buf"])) for s in bad]))
            for key, ev in sel.select(min(left, 1.0)):
                st = key.data
                sock = st["sock"]
                if ev & selectors.EVENT_WRITE:
                    if st["sent"] < len(st["out"]):
                        try:
                            st["sent"] += sock.send(st["out"][st["sent"]:st["sent"] + 256 * 1024])
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            fail("%s: send on connection #%d" % (what, st["i"]), "no error",
                                 "%s after %d bytes" % (e, st["sent"]))
                    if st["sent"] == len(st["out"]):
                        if st["shut"] and not st["sent_shut"]:
                            sock.shutdown(socket.SHUT_WR)
                            st["sent_shut"] = True
                        if not st["done"]:
                            sel.modify(sock, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = recv_some(sock)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail("%s: receive on connection #%d" % (what, st["i"]), "no error",
                             "%s after %d bytes" % (e, len(st["buf"])))
                    if chunk:
                        st["buf"] += chunk
                        if not st["shut"] and len(st["buf"]) >= st["want"]:
                            st["done"] = True
                    elif st["shut"]:
                        st["done"] = True
                    else:
                        fail("%s: connection #%d" % (what, st["i"]),
                             "%d bytes back" % st["want"], "EOF after %d bytes" % len(st["buf"]))
                    if st["done"]:
                        sel.unregister(sock)
                        pending -= 1
    finally:
        sel.close()
        for st in state:
            try:
                st["sock"].setblocking(True)
            except OSError:
                pass
    return [bytes(st["buf"]) for st in state]


def fill_without_reading(sock, payload, stall=1.0, timeout=30):
    """Writes payload (never reads) until the socket has accepted nothing for
    `stall` seconds or all of it is written. Returns the number of bytes written."""
    out = memoryview(payload).cast("B")
    sock.setblocking(False)
    written = 0
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_WRITE)
    try:
        while written < len(out) and time.monotonic() < deadline:
            if not sel.select(stall):
                break
            try:
                written += sock.send(out[written:written + 256 * 1024])
            except BlockingIOError:
                pass
            except OSError as e:
                fail("a client writing without reading", "its writes block, no error",
                     "%s: %s after %d bytes (the daemon closed the connection)" % (
                         e.__class__.__name__, e, written))
    finally:
        sel.close()
        sock.setblocking(True)
    return written


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the TCP socket local_port -> remote_port on
    loopback, from /proc/net/tcp{,6}; None if there is no such socket."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    lp = int(fields[1].rsplit(":", 1)[1], 16)
                    rp = int(fields[2].rsplit(":", 1)[1], 16)
                    if lp == local_port and rp == remote_port:
                        tx, rx = fields[4].split(":")
                        return int(tx, 16), int(rx, 16)
        except FileNotFoundError:
            continue
    return None


def fill_until_held(d, sock, payload, chunk=32 * 1024, settle=0.3, timeout=60):
    """Sends payload in pieces, without reading, until echod holds unsent
    data of its own (neither in its socket's send queue nor in the client's
    receive queue) while having read everything sent so far, and that state
    lasts `settle` seconds (longer than a delayed ACK: TCP's queues and
    windows have stopped moving). Returns (bytes sent, bytes echod holds)."""
    port = d.listener().port
    local = sock.getsockname()[1]
    sent = 0
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)

    def measure():
        q = tcp_queues(port, local)
        inq = int.from_bytes(fcntl.ioctl(sock, termios.FIONREAD, bytes(4)), sys.byteorder)
        return q, inq

    def quiet(pause):
        last = None
        while True:
            q, inq = measure()
            if q is not None and q[1] == 0 and (q, inq) == last:
                return sent - q[0] - inq
            if time.monotonic() > deadline:
                fail("echod reads what the client sent (its receive queue drains)", "rx_queue 0",
                     "tx_queue:rx_queue = %s after %d bytes" % (q, sent))
            last = (q, inq)
            time.sleep(pause)

    while sent < len(payload):
        piece = payload[sent:sent + chunk]
        sock.sendall(piece)
        sent += len(piece)
        if quiet(0.01) > 0:
            held = quiet(settle)
            if held > 0:
                return sent, held
    fail("test setup: echod holds unsent data", "> 0 bytes held after at most %d sent" % len(payload),
         "none held after %d bytes" % sent)


def wait_read_by_daemon(d, sock, timeout=15):
    """Waits until the daemon has read everything the client sent (its
    socket's receive queue is empty). Returns the daemon socket's send queue."""
    port = d.listener().port
    local = sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    q = None
    while time.monotonic() < deadline:
        q = tcp_queues(port, local)
        if q is not None and q[1] == 0:
            return q[0]
        time.sleep(0.05)
    fail("echod reads what the client sent (its receive queue drains)", "rx_queue 0",
         "tx_queue:rx_queue = %s" % (q,))


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


# ---------------------------------------------------------------- runner

def main(cases, timeout=300):
    """Runs the case named by argv[1] (or every case). Exit 0 pass, 1 fail, 77 skip."""
    names = sys.argv[1:] or list(cases)
    for n in names:
        if n not in cases:
            print("unknown case %r; cases: %s" % (n, ", ".join(cases)))
            sys.exit(2)

    def on_alarm(signum, frame):
        raise Failure("the case did not finish within %ss (harness limit)" % timeout)

    def on_term(signum, frame):
        _kill_all()
        sys.exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    status = 0
    for n in names:
        t0 = time.monotonic()
        signal.alarm(timeout)
        try:
            cases[n]()
        except Skip as e:
            print("SKIP %s: %s" % (n, e))
            if len(names) == 1:
                status = EXIT_SKIP
        except Failure as e:
            status = 1
            print("FAIL %s: %s" % (n, e))
            _dump_logs()
        except Exception:
            status = 1
            print("FAIL %s: unexpected error" % n)
            traceback.print_exc(file=sys.stdout)
            _dump_logs()
        else:
            print("PASS %s (%.1fs)" % (n, time.monotonic() - t0))
        finally:
            signal.alarm(0)
            _kill_all()
            _started.clear()
        sys.stdout.flush()
    sys.exit(status)


def _dump_logs():
    for d in _started:
        lines = d.log()
        tail = lines[-40:]
        print("--- echod log (%s, last %d of %d lines):" % (" ".join(d.argv), len(tail), len(lines)))
        for line in tail:
            print("    " + line)
