"""Helpers for the systemd test suite: start echod the way a service
manager does (passed sockets, NOTIFY_SOCKET, WATCHDOG_USEC, JOURNAL_STREAM),
watch its log and its notifications, talk to it over loopback.

Every wait has a deadline; no test asserts how fast anything happens.
Exit status: 0 pass, 1 fail, 77 skip (meson's convention).
"""

import atexit
import fcntl
import os
import re
import select
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time

# Generous: the suite also runs under sanitizers on busy machines.
TIMEOUT = 30.0

SKIP = 77


def skip(reason):
    print("SKIP: " + reason)
    sys.stdout.flush()
    sys.exit(SKIP)


def fail(message):
    print("FAIL: " + message)
    sys.stdout.flush()
    sys.exit(1)


def check(cond, message):
    if not cond:
        fail(message)


def echod_path():
    path = os.environ.get("ECHOD")
    if not path:
        fail("ECHOD is not set (the path of the echod binary)")
    if not os.access(path, os.X_OK):
        fail("ECHOD=%s is not an executable file" % path)
    return path


def need_systemd_build():
    """Socket activation and notifications need echod built with libsystemd."""
    if os.environ.get("ECHOD_HAVE_SYSTEMD", "1") != "1":
        skip("echod was built without libsystemd (-Dsystemd=disabled or libsystemd-dev missing)")


def needs_systemd(case):
    """Marks a case that skips when echod lacks libsystemd."""
    case.needs_systemd = True
    return case


def need_tool(name):
    path = shutil.which(name)
    if not path:
        skip("%s is not installed" % name)
    return path


def run_cases(cases):
    """Runs the case named by argv[1]: one meson test per case."""
    if len(sys.argv) < 2 or sys.argv[1] not in cases:
        fail("usage: %s CASE [ARG]... with CASE one of: %s"
             % (sys.argv[0], ", ".join(sorted(cases))))
    case = cases[sys.argv[1]]
    if getattr(case, "needs_systemd", False):
        need_systemd_build()
    case(*sys.argv[2:])
    print("PASS: " + sys.argv[1])


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


def have_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def free_port(hosts=("127.0.0.1",), kind=socket.SOCK_STREAM):
    """A port that is free on every host right now (someone may take it
    before we bind it again: callers retry)."""
    for _ in range(100):
        fam = socket.AF_INET6 if ":" in hosts[0] else socket.AF_INET
        with socket.socket(fam, kind) as s:
            s.bind((hosts[0], 0))
            port = s.getsockname()[1]
        ok = True
        for h in hosts[1:]:
            fam = socket.AF_INET6 if ":" in h else socket.AF_INET
            try:
                with socket.socket(fam, kind) as s:
                    s.bind((h, port))
            except OSError:
                ok = False
                break
        if ok:
            return port
    fail("found no free port on %s" % (hosts,))


def listening_socket(host="127.0.0.1", kind=socket.SOCK_STREAM):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    s.bind((host, 0))
    if kind == socket.SOCK_STREAM:
        s.listen(64)
    return s


# ---- talking to echod ----

def payload(n=65536, seed=1):
    """Every byte value, NUL and invalid UTF-8 included."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((x >> 16) & 0xFF)
    out[:256] = bytes(range(256))
    return bytes(out[:n])


def tcp_echo(addr, data, timeout=TIMEOUT):
    """Sends data, half-closes, reads until echod closes; returns the bytes."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    got = bytearray()
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(addr)
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        s.setblocking(False)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("echo from %s:%d timed out after %d of %d bytes"
                     % (addr[0], addr[1], len(got), len(data)))
            want_w = [s] if view else []
            r, w, _ = select.select([s], want_w, [], left)
            if w:
                n = s.send(view[:65536])
                view = view[n:]
                if not view:
                    s.shutdown(socket.SHUT_WR)
            if r:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
    return bytes(got)


def check_tcp_echo(addr, data=None):
    data = payload() if data is None else data
    got = tcp_echo(addr, data)
    check(got == data, "%s:%d echoed %d bytes, not the %d sent (or not the same bytes)"
          % (addr[0], addr[1], len(got), len(data)))


def check_udp_echo(addr, data=b"ping \x00\xff\xfe udp", sock=None, tries=10):
    """One datagram out, the same datagram back. UDP may drop: retry."""
    fam = socket.AF_INET6 if ":" in addr[0] else socket.AF_INET
    own = sock is None
    s = socket.socket(fam, socket.SOCK_DGRAM) if own else sock
    try:
        per_try = TIMEOUT / tries
        for _ in range(tries):
            s.sendto(data, addr)
            r, _, _ = select.select([s], [], [], per_try)
            if r:
                got, src = s.recvfrom(65536)
                check(got == data, "UDP echo returned %r, sent %r" % (got, data))
                check(src[1] == addr[1], "UDP echo came from port %d, not %d" % (src[1], addr[1]))
                return
        fail("no UDP echo from %s:%d" % addr[:2])
    finally:
        if own:
            s.close()


# ---- the daemon ----

class Process:
    """A child whose stdout and stderr are collected line by line."""

    def __init__(self, pid, out_r, err_r, what):
        self.pid = pid
        self.what = what
        self.status = None
        self.out = []
        self.err = []
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._reader, args=(out_r, self.out), daemon=True),
            threading.Thread(target=self._reader, args=(err_r, self.err), daemon=True),
        ]
        for t in self._threads:
            t.start()
        atexit.register(self.kill)

    def _reader(self, fd, lines):
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as f:
            while True:
                chunk = f.read(4096)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    with self._cond:
                        lines.append(line.decode("utf-8", "replace"))
                        self._cond.notify_all()
        with self._cond:
            if buf:
                lines.append(buf.decode("utf-8", "replace"))
            lines.append(None)  # end of stream
            self._cond.notify_all()

    def stderr_text(self):
        with self._cond:
            return "\n".join(l for l in self.err if l is not None)

    def wait_stderr(self, pattern, timeout=TIMEOUT, count=1, eof_ok=False):
        """Waits for count stderr lines matching pattern; returns the matches
        (with eof_ok, fewer when stderr closes first)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = [m for m in (rx.search(l) for l in self.err if l is not None) if m]
                if len(found) >= count:
                    return found
                if None in self.err:
                    if eof_ok:
                        return found
                    fail("%s closed stderr before logging %r; stderr was:\n%s"
                         % (self.what, pattern, self.stderr_text()))
                left = deadline - time.monotonic()
                if left <= 0:
                    fail("%s did not log %r within %ds; stderr so far:\n%s"
                         % (self.what, pattern, timeout, self.stderr_text()))
                self._cond.wait(left)

    def poll(self):
        if self.status is None:
            pid, st = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.status = os.waitstatus_to_exitcode(st)
        return self.status

    def wait(self, timeout=TIMEOUT):
        """Waits for the exit; returns the exit code (negative: signal)."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                fail("%s did not exit within %ds; stderr:\n%s"
                     % (self.what, timeout, self.stderr_text()))
            time.sleep(0.02)
        for t in self._threads:
            t.join(timeout)
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


def spawn(argv, env=None, fds=(), listen_pid=False, watchdog_pid=False,
          journal_stream=False, what=None):
    """Forks and execs argv the way a service manager starts a service:
    fds become 3, 4, ...; with listen_pid (watchdog_pid) LISTEN_PID
    (WATCHDOG_PID) is set to the child's own pid before exec; with
    journal_stream, JOURNAL_STREAM names the child's stderr, as when
    systemd connects stderr to the journal."""
    full_env = dict(os.environ)
    for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "NOTIFY_SOCKET",
              "WATCHDOG_USEC", "WATCHDOG_PID", "JOURNAL_STREAM"):
        full_env.pop(k, None)
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


# ---- NOTIFY_SOCKET ----

SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)


class Notify:
    """An AF_UNIX datagram socket standing in for the service manager's
    notification socket. Each message keeps its order, its sender pid and
    its fields."""

    def __init__(self):
        self.path = os.path.join(tmpdir(), "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []  # (sender pid or None, [field, ...], raw text)
        self.seen = 0       # messages before this index were consumed

    def env(self):
        return {"NOTIFY_SOCKET": self.path}

    def _recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS and len(cdata) >= 12:
                pid = struct.unpack("iII", cdata[:12])[0]
        text = data.decode("utf-8", "replace")
        fields = [f for f in text.split("\n") if f]
        self.messages.append((pid, fields, text))
        return True

    def drain(self):
        """Takes every message already queued, without waiting."""
        while self._recv(0):
            pass

    def wait_for(self, field_rx, timeout=TIMEOUT, what=None, proc=None):
        """Waits for the next unconsumed message with a field matching
        field_rx; returns (index, message). Messages before it are
        consumed too (they stay in self.messages for order checks)."""
        rx = re.compile(field_rx)
        deadline = time.monotonic() + timeout
        exited_drained = False
        while True:
            while self.seen < len(self.messages):
                i = self.seen
                self.seen += 1
                msg = self.messages[i]
                if any(rx.fullmatch(f) for f in msg[1]):
                    return i, msg
            left = deadline - time.monotonic()
            if proc is not None and proc.poll() is not None and exited_drained:
                fail("echod exited (status %s) before notification %s; received: %r; stderr:\n%s"
                     % (proc.status, what or field_rx, [m[2] for m in self.messages],
                        proc.stderr_text()))
            if proc is not None and proc.poll() is not None:
                exited_drained = True  # one more pass over what it sent before exiting
                self.drain()
                continue
            if left <= 0:
                extra = ("; stderr:\n" + proc.stderr_text()) if proc else ""
                fail("no notification %s within %ds; received: %r%s"
                     % (what or field_rx, timeout, [m[2] for m in self.messages], extra))
            self._recv(min(left, 0.5))

    def all_fields(self):
        return [(i, f) for i, m in enumerate(self.messages) for f in m[1]]

    def close(self):
        self.sock.close()


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
