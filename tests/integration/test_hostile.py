#!/usr/bin/env python3
"""Hostile clients at scale: slowloris, clients that never read, reset
storms, and signals arriving in the middle of each (floods, one-byte
writers and more clients than file descriptors: test_hostile_floods.py). Every load
checks what comes back (by hash or by sequence), not only how much.

Run as root, each case re-runs itself in a private network namespace
with only loopback (its thousands of connections and ports disturb
nobody else); otherwise it runs in place."""

import hashlib
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import harness
from harness import MIB, Daemon, check, check_bytes

LINGER_RESET = struct.pack("ii", 1, 0)


# ---------------------------------------------------------------- helpers

def _isolated(small_tcp_buffers=False):
    """Re-runs the case in a new network namespace (root only). Returns
    True when the caller should run the case here (inside the namespace,
    or not root), False when the namespace run already reported.
    small_tcp_buffers: in the namespace, cap TCP socket buffers at 64 KiB
    (its own tcp_rmem/tcp_wmem), so that what a client that never reads
    leaves behind waits in echod's buffers rather than the kernel's; the
    case needs the namespace then."""
    if os.environ.get("ECHOD_TEST_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        if small_tcp_buffers:
            for name in ("tcp_rmem", "tcp_wmem"):
                with open("/proc/sys/net/ipv4/" + name, "w") as f:
                    f.write("4096 16384 65536\n")
        return True
    if os.geteuid() != 0 or subprocess.run(["unshare", "-n", "true"],
                                           capture_output=True).returncode != 0:
        if small_tcp_buffers:
            raise harness.Skip("needs root for a private network namespace")
        print("(no private network namespace: running on the shared loopback)")
        return True
    r = subprocess.run(["unshare", "-n", sys.executable, sys.argv[0], sys.argv[1]],
                       env=dict(os.environ, ECHOD_TEST_NETNS="1"))
    if r.returncode == harness.EXIT_SKIP:
        raise harness.Skip("inside the namespace")
    check(r.returncode == 0, "the case inside its network namespace", "exit 0", r.returncode)
    return False


def _sanitized(d):
    """True if the daemon runs with AddressSanitizer (its RSS then means little)."""
    with open("/proc/%d/maps" % d.pid) as f:
        return "libasan" in f.read()


def _connect(listener, rcvbuf=None, sndbuf=None, nodelay=False, timeout=10):
    s = socket.socket(listener.family, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if sndbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        if nodelay:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(timeout)
        s.connect(listener.address)
    except BaseException:
        s.close()
        raise
    return s


def _reset(sock):
    """Closes with a reset (SO_LINGER {1, 0}): the client vanishes."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
    except OSError:
        pass
    sock.close()


def _pump(jobs, timeout, what):
    """Full-duplex echo of payloads on many connections at once (its own
    buffer: safe beside other threads). Returns the bytes received per job."""
    scratch = memoryview(bytearray(256 * 1024))
    sel = selectors.DefaultSelector()
    st = []
    for i, (sock, payload) in enumerate(jobs):
        sock.setblocking(False)
        s = {"i": i, "sock": sock, "out": memoryview(payload), "sent": 0, "buf": bytearray()}
        st.append(s)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, s)
    left_jobs = len(st)
    deadline = time.monotonic() + timeout
    try:
        while left_jobs:
            left = deadline - time.monotonic()
            if left <= 0:
                bad = [s for s in st if len(s["buf"]) < len(s["out"])][:5]
                harness.fail("%s: %d connections echoed within %ss" % (what, len(st), timeout),
                             "every payload back", ["#%d sent %d/%d got %d" % (
                                 s["i"], s["sent"], len(s["out"]), len(s["buf"])) for s in bad])
            for key, ev in sel.select(min(left, 0.5)):
                s = key.data
                if ev & selectors.EVENT_WRITE and s["sent"] < len(s["out"]):
                    try:
                        s["sent"] += s["sock"].send(s["out"][s["sent"]:s["sent"] + 65536])
                    except BlockingIOError:
                        pass
                    if s["sent"] == len(s["out"]):
                        sel.modify(s["sock"], selectors.EVENT_READ, s)
                if ev & selectors.EVENT_READ:
                    try:
                        n = s["sock"].recv_into(scratch)
                    except BlockingIOError:
                        continue
                    if n == 0:
                        harness.fail("%s: connection #%d" % (what, s["i"]), "its echo",
                                     "EOF after %d of %d bytes" % (len(s["buf"]), len(s["out"])))
                    s["buf"] += scratch[:n]
                    if len(s["buf"]) >= len(s["out"]):
                        sel.unregister(s["sock"])
                        left_jobs -= 1
    finally:
        sel.close()
    return [bytes(s["buf"]) for s in st]


class NormalLoad(threading.Thread):
    """`clients` well-behaved clients echo fresh random payloads round after
    round until stopped; every echo is checked by SHA-256. Errors are kept
    and re-raised by finish()."""

    def __init__(self, listener, clients, size=64 * 1024, round_timeout=30):
        super().__init__(daemon=True)
        self.listener, self.clients, self.size = listener, clients, size
        self.round_timeout = round_timeout
        self.halt = threading.Event()
        self.rounds = 0
        self.bytes = 0
        self.worst = 0.0
        self.error = None

    def run(self):
        try:
            socks = [_connect(self.listener) for _ in range(self.clients)]
            try:
                while not self.halt.is_set():
                    payloads = [os.urandom(self.size) for _ in socks]
                    t0 = time.monotonic()
                    got = _pump(list(zip(socks, payloads)), self.round_timeout,
                                "normal clients, round %d" % self.rounds)
                    self.worst = max(self.worst, time.monotonic() - t0)
                    for i, (p, g) in enumerate(zip(payloads, got)):
                        if hashlib.sha256(p).digest() != hashlib.sha256(g).digest():
                            check_bytes("normal client #%d, round %d (sha256)" % (i, self.rounds), p, g)
                    self.rounds += 1
                    self.bytes += sum(len(p) for p in payloads)
                    self.halt.wait(0.02)  # leave the CPUs to the load under test
            finally:
                for s in socks:
                    s.close()
        except BaseException as e:  # reported by finish()
            self.error = e

    def finish(self, min_rounds=1, what="normal clients"):
        self.halt.set()
        self.join(self.round_timeout + 10)
        if self.error is not None:
            raise self.error
        check(not self.is_alive(), "%s stop" % what, "thread done", "still running")
        check(self.rounds >= min_rounds, "%s are served during the load" % what,
              "at least %d rounds of %d exact echoes" % (min_rounds, self.clients),
              "%d rounds" % self.rounds)
        print("%s: %d rounds x %d clients, %.1f MiB verified by sha256, slowest round %.2fs" % (
            what, self.rounds, self.clients, self.bytes / MIB, self.worst))


class SignalStorm(threading.Thread):
    """Sends the signals in turn every `period` seconds until stopped; with
    configs, rewrites the config file (alternating) before each SIGHUP."""

    def __init__(self, d, sigs, period=0.2, configs=None):
        super().__init__(daemon=True)
        self.d, self.sigs, self.period, self.configs = d, sigs, period, configs
        self.halt = threading.Event()
        self.sent = {s: 0 for s in sigs}

    def run(self):
        i = 0
        while not self.halt.wait(self.period):
            sig = self.sigs[i % len(self.sigs)]
            if sig == signal.SIGHUP and self.configs:
                self.d.write_config(self.configs[self.sent[sig] % len(self.configs)])
            if not self.d.alive():
                return
            os.kill(self.d.pid, sig)
            self.sent[sig] += 1
            i += 1

    def finish(self, d):
        self.halt.set()
        self.join(5)
        names = ", ".join("%d %s" % (n, signal.Signals(s).name) for s, n in self.sent.items())
        reloads = len(d.find_log(r"configuration reloaded"))
        stats = len(d.find_log(r"^echod: stats: "))
        print("signals sent: %s; echod logged %d reloads, %d stats lines" % (names, reloads, stats))
        d.check_alive("echod keeps running through the signals")
        if signal.SIGHUP in self.sent and self.sent[signal.SIGHUP]:
            check(reloads >= 1, "reloads logged", ">= 1", reloads)
        return reloads


RELOAD_CONFIGS = ("idle_timeout = 0\nbuffer_size = 64K\n",
                  "idle_timeout = 300s\nbuffer_size = 32K\n")


def _wait_idle(d, timeout=30, what="every client gone"):
    return d.wait_stats(lambda st: st[0] == 0, what + ": 0 current connections", timeout=timeout)


# ---------------------------------------------------------------- slowloris

SLOW_CLIENTS, SLOW_BYTES, SLOW_SECONDS = 2000, 20, 10.0


def _slow_message(i):
    tag = hashlib.sha256(b"slow %d" % i).hexdigest()[:SLOW_BYTES - 6].encode()
    return b"%04d:" % i + tag + b"\n"


def _slowloris(storm):
    if not _isolated():
        return
    harness.raise_nofile()
    with Daemon(config=RELOAD_CONFIGS[0]) as d:
        d.start()
        lst = d.listener()
        msgs = [_slow_message(i) for i in range(SLOW_CLIENTS)]
        t0 = time.monotonic()
        slow = [_connect(lst) for _ in range(SLOW_CLIENTS)]
        print("%d slow clients connected in %.1fs" % (SLOW_CLIENTS, time.monotonic() - t0))
        for s in slow:
            s.setblocking(False)
        got = [bytearray() for _ in slow]
        normal = NormalLoad(lst, 50)
        normal.start()
        signals = None
        if storm:
            signals = SignalStorm(d, [signal.SIGHUP, signal.SIGUSR1], 0.1, RELOAD_CONFIGS)
            signals.start()

        def drain():
            for i, s in enumerate(slow):
                if len(got[i]) < SLOW_BYTES:
                    try:
                        got[i] += s.recv(64)
                    except BlockingIOError:
                        pass
        tick = SLOW_SECONDS / SLOW_BYTES
        t_start = time.monotonic()
        peak = None
        for r in range(SLOW_BYTES):
            for i, s in enumerate(slow):
                s.send(msgs[i][r:r + 1])
            drain()
            if r == SLOW_BYTES // 2:
                peak = d.stats()
            time.sleep(max(0.0, t_start + (r + 1) * tick - time.monotonic()))
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and any(len(g) < SLOW_BYTES for g in got):
            drain()
            time.sleep(0.05)
        trickle = time.monotonic() - t_start
        reloads = signals.finish(d) if signals else 0
        normal.finish(min_rounds=3, what="50 normal clients beside %d slow ones" % SLOW_CLIENTS)
        short = [i for i, g in enumerate(got) if len(g) < SLOW_BYTES]
        check(not short, "every trickled byte comes back", "%d x %d bytes" % (SLOW_CLIENTS, SLOW_BYTES),
              "%d clients short, e.g. #%d got %r" % (len(short), short[0], bytes(got[short[0]]))
              if short else "")
        for i, g in enumerate(got):
            check_bytes("echo of slow client #%d" % i, msgs[i], g)
        h_want = harness.sha256(*msgs)
        h_got = harness.sha256(*got)
        check(h_want == h_got, "sha256 of every slow client's echo", h_want, h_got)
        print("slowloris: %d clients x %d bytes trickled over %.1fs, all back exactly (sha256 %s...);"
              " stats at mid-trickle: current %d, total %d; %d reloads" % (
                  SLOW_CLIENTS, SLOW_BYTES, trickle, h_got[:16], peak[0], peak[1], reloads))
        check(peak[0] >= SLOW_CLIENTS, "slow clients held at once (mid-trickle)",
              ">= %d current" % SLOW_CLIENTS, peak[0])
        for s in slow:
            s.close()
        _wait_idle(d)
        d.stop()


@harness.case(timeout=120, alone=True)
def slowloris():
    """2,000 clients trickle 20 bytes each, one byte per 0.5 s, while 50
    normal clients keep echoing 64 KiB payloads: both are served, every
    trickled byte comes back in place."""
    _slowloris(storm=False)


@harness.case(timeout=120, alone=True)
def slowloris_signals():
    """The slowloris load with SIGHUP (two valid configs in turn) and
    SIGUSR1 every 0.1 s."""
    _slowloris(storm=True)


# ---------------------------------------------------------------- never reading

HOGS = 1000


def _fill_hogs(d, hogs, cap=1 * MIB, timeout=40):
    """Writes to every hog (never reading) until no write is accepted for
    three rounds, or cap bytes each. Returns the bytes written in all."""
    chunk = bytes(range(256)) * 256  # 64 KiB
    sent = [0] * len(hogs)
    stalled = 0
    deadline = time.monotonic() + timeout
    while stalled < 3 and time.monotonic() < deadline:
        progress = 0
        for i, h in enumerate(hogs):
            if sent[i] >= cap:
                continue
            try:
                n = h.send(chunk)
            except BlockingIOError:
                continue
            sent[i] += n
            progress += n
        stalled = stalled + 1 if progress == 0 else 0
        time.sleep(0.2 if progress == 0 else 0.01)
    return sum(sent)


def _never_reading(sigterm):
    if not _isolated(small_tcp_buffers=True):
        return
    harness.raise_nofile()
    buffer_size = 64 * 1024
    shutdown_timeout = 3.0
    config = "buffer_size = 64K\nshutdown_timeout = %gs\n" % shutdown_timeout
    with Daemon(config=config) as d:
        d.start()
        lst = d.listener()
        w = _connect(lst)
        harness.echo(w, os.urandom(MIB), what="warm-up echo")
        w.close()
        _wait_idle(d, what="warm-up client gone")
        time.sleep(0.2)
        rss0, fds0 = d.rss_kib(), d.open_fds()
        hogs = [_connect(lst, rcvbuf=4096, sndbuf=32 * 1024) for _ in range(HOGS)]
        for h in hogs:
            h.setblocking(False)
        t0 = time.monotonic()
        total = _fill_hogs(d, hogs)
        time.sleep(0.5)
        rss1, fds1 = d.rss_kib(), d.open_fds()
        st = d.stats()
        print("%d never-reading clients wrote %.0f MiB in %.1fs; echod VmRSS %d -> %d KiB (+%d KiB,"
              " %.1f KiB per client), fds %d -> %d (+%d)" % (
                  HOGS, total / MIB, time.monotonic() - t0, rss0, rss1, rss1 - rss0,
                  (rss1 - rss0) / HOGS, fds0, fds1, fds1 - fds0))
        check(st[0] == HOGS, "never-reading clients connected", HOGS, st[0])
        check(fds1 - fds0 <= HOGS + 40, "fds of %d never-reading clients" % HOGS,
              "at most %d more (one each, plus a small pool)" % (HOGS + 40), "%d more" % (fds1 - fds0))
        constant = 16 * 1024  # KiB
        bound = HOGS * buffer_size // 1024 + constant
        if _sanitized(d):
            print("(AddressSanitizer build: RSS bound not checked)")
        else:
            check(rss1 - rss0 > HOGS * buffer_size // 1024 // 2,
                  "test setup: the clients made echod hold data",
                  "more than %d KiB" % (HOGS * buffer_size // 1024 // 2), "%d KiB" % (rss1 - rss0))
            check(rss1 - rss0 <= bound, "VmRSS with %d never-reading clients" % HOGS,
                  "at most base + %d x %d + %d KiB = +%d KiB" % (HOGS, buffer_size, constant * 1024, bound),
                  "+%d KiB" % (rss1 - rss0))
        o = _connect(lst)
        payload = os.urandom(MIB)
        got = _pump([(o, payload)], 30, "normal client beside the hogs")[0]
        check(harness.sha256(payload) == harness.sha256(got), "normal client's 1 MiB echo (sha256)",
              harness.sha256(payload), harness.sha256(got))
        o.close()
        print("a normal client got its 1 MiB echo exactly beside them")
        if sigterm:
            t_term = time.monotonic()
            d.signal(signal.SIGTERM)
            rc = d.wait_exit(shutdown_timeout + 10)
            took = time.monotonic() - t_term
            d.check_sanitizers()
            print("SIGTERM with %d clients never reading: exit %s after %.2fs (shutdown_timeout %gs)" % (
                HOGS, rc, took, shutdown_timeout))
            check(rc == 0, "exit status after SIGTERM", 0, rc)
            check(took <= shutdown_timeout + 3, "exit within shutdown_timeout",
                  "<= %.1fs" % (shutdown_timeout + 3), "%.2fs" % took)
            for h in hogs:
                h.close()
            return
        for h in hogs:
            h.close()
        _wait_idle(d)
        d.stop()


@harness.case(timeout=120, alone=True)
def never_reading():
    """1,000 clients write and never read (buffer_size = 64K): echod holds
    at most buffer_size each (VmRSS <= base + clients x 64K + 16 MiB), one
    fd each, and still serves a normal client exactly."""
    _never_reading(sigterm=False)


@harness.case(timeout=120, alone=True)
def never_reading_sigterm():
    """SIGTERM with 1,000 never-reading clients holding echoes: exit 0
    within shutdown_timeout (3 s, plus a margin)."""
    _never_reading(sigterm=True)


# ---------------------------------------------------------------- RST storm

RST_CLIENTS, RST_BURST = 2000, 100


def _rst_storm(storm):
    if not _isolated(small_tcp_buffers=True):
        return
    harness.raise_nofile()
    with Daemon(config=RELOAD_CONFIGS[0]) as d:
        d.start()
        lst = d.listener()
        normal = NormalLoad(lst, 8, size=256 * 1024)
        normal.start()
        signals = None
        if storm:
            signals = SignalStorm(d, [signal.SIGHUP, signal.SIGUSR1], 0.1, RELOAD_CONFIGS)
            signals.start()
        chunk = os.urandom(64 * 1024)
        t0 = time.monotonic()
        done = 0
        mid_write = pending = 0
        sent = 0

        def send_some(s):
            try:
                return s.send(chunk)
            except BlockingIOError:
                return 0
        while done < RST_CLIENTS:
            burst = [_connect(lst, rcvbuf=4096) for _ in range(RST_BURST)]
            for s in burst:
                s.setblocking(False)
            for j, s in enumerate(burst):
                sent += send_some(s)
                if j % 2 == 0:  # vanishes while still writing
                    _reset(s)
                    mid_write += 1
            # The others keep writing, never reading, until echod's buffers
            # hold echoes for them (the kernel's are small here); then vanish.
            for _ in range(10):
                for s in burst[1::2]:
                    sent += send_some(s)
                time.sleep(0.01)
            for s in burst[1::2]:
                _reset(s)
                pending += 1
            done += len(burst)
        storm_s = time.monotonic() - t0
        reloads = signals.finish(d) if signals else 0
        normal.finish(min_rounds=3, what="8 normal clients during the reset storm")
        st = _wait_idle(d, what="after %d resets" % RST_CLIENTS)
        print("reset storm: %d clients in bursts of %d in %.1fs (%d reset mid-write, %d with echoes"
              " pending), %.0f MiB sent; stats: current %d, total %d, %d bytes echoed; %d reloads" % (
                  RST_CLIENTS, RST_BURST, storm_s, mid_write, pending, sent / MIB, st[0], st[1], st[2],
                  reloads))
        check(st[1] >= RST_CLIENTS, "connections accepted during the storm", ">= %d" % RST_CLIENTS, st[1])
        o = _connect(lst)
        harness.echo(o, os.urandom(MIB), what="echo after the storm")
        o.close()
        _wait_idle(d)
        d.stop()


@harness.case(timeout=120, alone=True)
def rst_storm():
    """2,000 clients in bursts of 100 send without reading and vanish with
    a reset (half while writing, half after 0.1 s of writing, with echoes
    pending in echod's buffers: TCP buffers are capped at 64 KiB here)
    while 8 clients echo 256 KiB payloads: echod stays up, serves them
    exactly, and its connection count returns to 0."""
    _rst_storm(storm=False)


@harness.case(timeout=120, alone=True)
def rst_storm_signals():
    """The reset storm with SIGHUP (two valid configs in turn) and SIGUSR1
    every 0.1 s."""
    _rst_storm(storm=True)


# ---------------------------------------------------------------- floods and tiny writes

if __name__ == "__main__":
    harness.main()
