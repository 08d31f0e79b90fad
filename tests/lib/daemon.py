"""echod as the integration cases run it: a plain foreground process on
loopback, its log read line by line as it comes, always killed at the end.

Every wait is bounded; a failed wait says what was expected and shows the log.
"""

import atexit
import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import tempfile
import threading
import time

from lib.check import Failure, Skip, check, fail
from lib.client import connect
from lib.kernel import cpu_seconds

ECHOD = os.environ.get("ECHOD", "")

# Exit status of the contract.
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_CONFIG = 78
EXIT_SKIP = 77

# Variables that would change how the daemon starts (socket activation,
# readiness, journal logging); tests want a plain foreground daemon.
SERVICE_ENV = ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
               "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM")

SANITIZER_MARKERS = ("AddressSanitizer", "LeakSanitizer", "UndefinedBehaviorSanitizer",
                     "runtime error:", "ThreadSanitizer", "MemorySanitizer")


# ---------------------------------------------------------------- children

_live = []     # every child started and not yet reaped, killed at exit
started = []   # daemons started by the current case, for the failure report


def track(child):
    """Kills child (anything with kill()) at the end of the case or at exit."""
    _live.append(child)


def untrack(child):
    if child in _live:
        _live.remove(child)


def kill_all():
    for child in list(_live):
        child.kill()
        untrack(child)


atexit.register(kill_all)


class LineLog:
    """The lines of a child's pipe, read by a thread of their own as they
    come, for the test to wait on."""

    def __init__(self, stream):
        self.lines = []
        self.eof = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        with stream:
            for raw in stream:
                with self._cond:
                    self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                    self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def snapshot(self):
        with self._cond:
            return list(self.lines)

    def __len__(self):
        with self._cond:
            return len(self.lines)

    def wait(self, pattern, timeout, since=0, count=1):
        """Waits for count lines (from index since) matching the regex;
        returns the matches: fewer when the pipe closes or time runs out."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        found = []
        with self._cond:
            i = since
            while True:
                while i < len(self.lines) and len(found) < count:
                    m = rx.search(self.lines[i])
                    i += 1
                    if m:
                        found.append(m)
                left = deadline - time.monotonic()
                if len(found) >= count or self.eof or left <= 0:
                    return found
                self._cond.wait(left)

    def wait_eof(self, timeout):
        with self._cond:
            self._cond.wait_for(lambda: self.eof, timeout=timeout)
        self._thread.join(timeout)


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
            # N, or (soft, hard)
            limits = nofile if isinstance(nofile, tuple) else (nofile, nofile)
            resource.setrlimit(resource.RLIMIT_NOFILE, limits)
    return setup


def daemon_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    if extra:
        env.update(extra)
    return env


def require_echod():
    if not ECHOD:
        raise Skip("ECHOD is not set (run through meson, or set ECHOD=path/to/echod)")
    if not os.access(ECHOD, os.X_OK):
        raise Failure("ECHOD=%s is not an executable file" % ECHOD)
    return ECHOD


class Result:
    def __init__(self, args, rc, stdout, stderr):
        self.args, self.rc, self.stdout, self.stderr = args, rc, stdout, stderr

    def describe(self):
        return "`%s` exited %s\n--- stdout:\n%s--- stderr:\n%s---" % (
            " ".join(self.args), self.rc, self.stdout, self.stderr)


def run(args, timeout=15, nofile=None, env=None):
    """Runs echod with args to completion (e.g. -t, --help, a failing start).
    The process is killed if it does not exit within timeout. env: variables
    added to the daemon's environment."""
    require_echod()
    argv = [ECHOD] + list(args)
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=daemon_env(env),
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
_SERVING_METRICS = re.compile(r"^echod: serving metrics on (\S+) \((tcp|unix)\)$")


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
    env:    variables added to its environment.
    """

    def __init__(self, args=(), config="", listen=("127.0.0.1:0",), nofile=None,
                 log_level=None, tmpdir=None, env=None):
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
        self.env = env
        self.proc = None
        self.errlog = None
        self.stdout_chunks = []
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
        started.append(self)
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=daemon_env(self.env), preexec_fn=_child_setup(self.nofile),
                                     cwd=self.tmpdir)
        track(self)
        self.errlog = LineLog(self.proc.stderr)
        threading.Thread(target=self._read_stdout, daemon=True).start()
        if ready:
            self.wait_log(r"^echod: ready$", timeout=timeout)
            self.start_listeners()
        return self

    def start_listeners(self):
        """Learns the listeners from the `listening on` lines (once ready)."""
        self.listeners = []
        for line in self.log():
            m = _LISTENING.match(line)
            if m:
                self.listeners.append(Listener(m.group(1), m.group(2)))
        check(self.listeners, "echod logged its listeners before `ready`",
              "at least one `echod: listening on ADDR (KIND)` line", self.log())

    def metrics_address(self):
        """The (first) metrics endpoint's address from the log, or None."""
        for line in self.log():
            m = _SERVING_METRICS.match(line)
            if m:
                return Listener(m.group(1), m.group(2)).address
        return None

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
        untrack(self)

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
        # let the reader thread take the last lines
        self.errlog.wait_eof(5)
        untrack(self)
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
        return self.errlog.snapshot() if self.errlog else []

    def stderr(self):
        return "\n".join(self.log()) + "\n"

    def stdout(self):
        return b"".join(self.stdout_chunks).decode(errors="replace")

    def mark(self):
        """Index of the next log line, to wait only for lines after this point."""
        return len(self.errlog) if self.errlog else 0

    def wait_log(self, pattern, timeout=10, since=0):
        """Waits for a log line (from index `since`) matching the regex; returns the match."""
        found = self.errlog.wait(pattern, timeout, since)
        if found:
            return found[0]
        state = "running" if self.alive() else "exited with %s" % self.proc.poll()
        fail("a log line matching /%s/ within %ss" % (pattern, timeout), pattern,
             "no such line (echod %s); log:\n%s" % (state, "\n".join(self.log()[since:]) or "(empty)"))

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
        ls = [li for li in self.listeners if li.kind == kind]
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
        return cpu_seconds(self.pid)

    def open_fds(self):
        return len(os.listdir("/proc/%d/fd" % self.pid))


def dump_logs():
    """The tail of every log of the daemons the case started."""
    for d in started:
        lines = d.log()
        tail = lines[-40:]
        print("--- echod log (%s, last %d of %d lines):" % (" ".join(d.argv), len(tail), len(lines)))
        for line in tail:
            print("    " + line)
