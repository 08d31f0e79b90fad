"""echod started the way a service manager starts a service: passed
sockets as fds 3, 4, ... with LISTEN_FDS and LISTEN_PID, NOTIFY_SOCKET,
WATCHDOG_USEC, JOURNAL_STREAM. Its stdout and stderr are read line by line.

Every wait has a deadline; no test asserts how fast anything happens.
"""

import atexit
import fcntl
import os
import re
import shutil
import signal
import tempfile
import time

from lib.check import check, fail, skip
from lib.client import TIMEOUT
from lib.daemon import SERVICE_ENV, LineLog, require_echod, track, untrack


def echod_path():
    return require_echod()


def need_systemd_build():
    """Socket activation and notifications need echod built with libsystemd."""
    if os.environ.get("ECHOD_HAVE_SYSTEMD", "1") != "1":
        skip("echod was built without libsystemd (-Dsystemd=disabled or libsystemd-dev missing)")


def needs_systemd(case):
    """Marks a case that skips when echod lacks libsystemd."""
    case.needs = getattr(case, "needs", ()) + (need_systemd_build,)
    return case


def need_tool(name):
    path = shutil.which(name)
    if not path:
        skip("%s is not installed" % name)
    return path


_tmp = None


def tmpdir():
    global _tmp
    if _tmp is None:
        _tmp = tempfile.mkdtemp(prefix="echod-systemd-test.")
        atexit.register(shutil.rmtree, _tmp, True)
    return _tmp


def write_config(text="", name="echod.conf"):
    path = os.path.join(tmpdir(), name)
    with open(path, "w") as f:
        f.write(text)
    return path


class Process:
    """A child whose stdout and stderr are collected line by line."""

    def __init__(self, pid, out_r, err_r, what):
        self.pid = pid
        self.what = what
        self.status = None
        self.out = LineLog(os.fdopen(out_r, "rb"))
        self.err = LineLog(os.fdopen(err_r, "rb"))
        track(self)

    def stderr_text(self):
        return "\n".join(self.err.snapshot())

    def wait_stderr(self, pattern, timeout=TIMEOUT, count=1, eof_ok=False):
        """Waits for count stderr lines matching pattern; returns the matches
        (with eof_ok, fewer when stderr closes first)."""
        found = self.err.wait(pattern, timeout, count=count)
        if len(found) >= count or (eof_ok and self.err.eof):
            return found
        if self.err.eof:
            fail("%s closed stderr before logging %r; stderr was:\n%s"
                 % (self.what, pattern, self.stderr_text()))
        fail("%s did not log %r within %ds; stderr so far:\n%s"
             % (self.what, pattern, timeout, self.stderr_text()))

    def poll(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
                untrack(self)
        return self.status

    def wait(self, timeout=TIMEOUT):
        """Waits for the exit; returns the exit code (negative: signal)."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                fail("%s did not exit within %ds; stderr:\n%s"
                     % (self.what, timeout, self.stderr_text()))
            time.sleep(0.02)
        self.out.wait_eof(timeout)
        self.err.wait_eof(timeout)
        return self.status

    def signal(self, sig):
        check(self.poll() is None, "%s exited (status %s) before signal %d; stderr:\n%s"
              % (self.what, self.status, sig, self.stderr_text()))
        os.kill(self.pid, sig)

    def kill(self):
        if self.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            os.waitpid(self.pid, 0)
            self.status = -signal.SIGKILL
            untrack(self)


def spawn(argv, env=None, fds=(), listen_pid=False, watchdog_pid=False,
          journal_stream=False, what=None):
    """Forks and execs argv the way a service manager starts a service:
    fds become 3, 4, ...; with listen_pid (watchdog_pid) LISTEN_PID
    (WATCHDOG_PID) is set to the child's own pid before exec; with
    journal_stream, JOURNAL_STREAM names the child's stderr, as when
    systemd connects stderr to the journal."""
    full_env = {k: v for k, v in os.environ.items() if k not in SERVICE_ENV}
    full_env.update(env or {})
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    fds = [f if isinstance(f, int) else f.fileno() for f in fds]
    pid = os.fork()
    if pid == 0:
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            # Out of the way first, so that no dup2 clobbers a later source.
            high = [fcntl.fcntl(f, fcntl.F_DUPFD, 100 + len(fds)) for f in fds]
            for i, f in enumerate(high):
                os.dup2(f, 3 + i, inheritable=True)
            os.closerange(3 + len(fds), 65536)
            if listen_pid:
                full_env["LISTEN_PID"] = str(os.getpid())
            if watchdog_pid:
                full_env["WATCHDOG_PID"] = str(os.getpid())
            if journal_stream:
                full_env["JOURNAL_STREAM"] = journal_stream_of(2)
            os.execve(argv[0], argv, full_env)
        except BaseException as e:  # never return into the test in the child
            try:
                os.write(2, ("exec %s failed: %s\n" % (argv[0], e)).encode())
            finally:
                os._exit(127)
    os.close(out_w)
    os.close(err_w)
    return Process(pid, out_r, err_r, what or os.path.basename(argv[0]))


def journal_stream_of(fd):
    st = os.fstat(fd)
    return "%d:%d" % (st.st_dev, st.st_ino)


LISTENING_RX = r"listening on (\S+) \((tcp|udp|unix)\)"


def parse_addr(text):
    """'127.0.0.1:43817' or '[::1]:43817' -> (host, port)."""
    m = re.fullmatch(r"\[(.*)\]:(\d+)|([^:]*):(\d+)", text)
    check(m is not None, "cannot parse address %r" % text)
    if m.group(1) is not None:
        return (m.group(1), int(m.group(2)))
    return (m.group(3), int(m.group(4)))


def start_echod(args=(), env=None, fds=(), listen_pid=None, watchdog_pid=False, config="",
                journal_stream=False):
    """echod with its own empty config file (never the machine's), at
    log level info, plus args."""
    argv = [echod_path(), "-c", write_config(config), "--log-level=info"] + list(args)
    if listen_pid is None:
        listen_pid = bool(fds)
    env = dict(env or {})
    if fds:
        env.setdefault("LISTEN_FDS", str(len(fds)))
    return spawn(argv, env=env, fds=fds, listen_pid=listen_pid,
                 watchdog_pid=watchdog_pid, journal_stream=journal_stream, what="echod")


def stop_echod(proc, timeout=TIMEOUT):
    proc.signal(signal.SIGTERM)
    code = proc.wait(timeout)
    check(code == 0, "echod exited with %s after SIGTERM, not 0; stderr:\n%s"
          % (code, proc.stderr_text()))


def monotonic_usec():
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
