#!/usr/bin/env python3
"""Teardown while events are in flight: signals and reloads that close
connections or listeners whose events wait later in the same epoll batch.
Each case repeats its race a few times; a crash shows as a signal exit
status, a use-after-free as a sanitizer report."""

import hashlib
import os
import signal
import socket
import threading
import time

import harness
from harness import Daemon, check, check_equal

ROUNDS = 5


class Streamer(threading.Thread):
    """Keeps one connection busy (sends and reads) until stopped, so that
    echod's wakeups carry many events."""

    def __init__(self, listener):
        super().__init__(daemon=True)
        self.sock = harness.connect(listener)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()

    def run(self):
        chunk = os.urandom(64 * 1024)
        try:
            while not self.stop.is_set():
                self.sock.send(chunk)
                try:
                    while self.sock.recv(1 << 20):
                        pass
                except socket.timeout:
                    pass
        except OSError:
            pass

    def close(self):
        self.stop.set()
        self.join(5)
        self.sock.close()


def _exit_cleanly(d, what, timeout=30):
    rc = d.wait_exit(timeout)
    d.check_sanitizers()
    check(rc == 0, "%s: echod exits 0" % what, 0,
          "%s%s" % (rc, " (killed by %s)" % signal.Signals(-rc).name if rc < 0 else ""))


@harness.case(timeout=120, alone=True)
def sigterm_clients_close():
    """SIGTERM, then 300 idle clients close at once while one streams: the
    drain closes connections whose FIN is still in the batch."""
    harness.raise_nofile()
    for r in range(ROUNDS):
        with Daemon(config="shutdown_timeout = 10s\n") as d:
            d.start()
            idle = [d.connect() for _ in range(300)]
            for s in idle:
                harness.echo(s, b"x")
            st = Streamer(d.listener())
            st.start()
            time.sleep(0.2)
            # Stopped, echod finds the signal and every FIN in one wakeup.
            d.signal(signal.SIGSTOP)
            d.signal(signal.SIGTERM)
            for s in idle:
                s.close()
            time.sleep(0.1)
            d.signal(signal.SIGCONT)
            st.close()
            _exit_cleanly(d, "round %d" % r)


@harness.case(timeout=90)
def sigterm_then_sigint():
    """SIGTERM and SIGINT read in one wakeup, before the data of 20 clients:
    the second signal closes every connection while their events wait in
    the same batch."""
    harness.raise_nofile()
    for r in range(ROUNDS):
        with Daemon(config="shutdown_timeout = 10s\n") as d:
            d.start()
            socks = [d.connect() for _ in range(20)]
            for s in socks:
                harness.echo(s, b"x")
            d.signal(signal.SIGSTOP)
            d.signal(signal.SIGTERM)
            d.signal(signal.SIGINT)
            for s in socks:
                s.send(b"after the signals")
            time.sleep(0.1)
            d.signal(signal.SIGCONT)
            _exit_cleanly(d, "round %d" % r)
            for s in socks:
                s.close()


def _connect_loop(port, stop, kind=socket.SOCK_STREAM):
    payload = b"x" * 512
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_INET, kind) as s:
                s.settimeout(0.5)
                if kind == socket.SOCK_STREAM:
                    s.connect(("127.0.0.1", port))
                    s.send(b"hello")
                else:
                    for _ in range(256):
                        s.sendto(payload, ("127.0.0.1", port))
        except OSError:
            pass


def _reload_drops_listener(kind, scheme):
    keep, drop = harness.free_port(), harness.free_port(kind=kind)
    both = "listen = 127.0.0.1:%d\nlisten = %s127.0.0.1:%d\n" % (keep, scheme, drop)
    one = "listen = 127.0.0.1:%d\n" % keep
    with Daemon(config=both, listen=None) as d:
        d.start()
        stop = threading.Event()
        loaders = [threading.Thread(target=_connect_loop, args=(drop, stop, kind), daemon=True)
                   for _ in range(3)]
        for t in loaders:
            t.start()
        try:
            for r in range(2 * ROUNDS):
                since = d.mark()
                d.write_config(one if r % 2 == 0 else both)
                d.signal(signal.SIGHUP)
                d.wait_log(r"^echod: configuration reloaded", timeout=10, since=since)
                time.sleep(0.1)
                d.check_alive("echod survives a reload that drops a busy listener (round %d)" % r)
            with harness.connect(d.listener()) as s:
                harness.echo(s, b"still serving\n")
            d.signal(signal.SIGTERM)
        finally:
            stop.set()
            for t in loaders:
                t.join(5)
        _exit_cleanly(d, "SIGTERM while clients reach a listener")


@harness.case(timeout=90)
def sighup_drops_busy_listener():
    """A reload that drops a listener while clients connect to it."""
    _reload_drops_listener(socket.SOCK_STREAM, "")


@harness.case(timeout=90, alone=True)
def sighup_drops_flooded_udp():
    """A reload that drops a UDP listener during a flood (the listener had
    deferred itself for the rest of its queue)."""
    _reload_drops_listener(socket.SOCK_DGRAM, "udp:")


@harness.case(timeout=90, alone=True)
def sigterm_during_udp_flood():
    """SIGTERM during a UDP flood: the deferred UDP listener is freed."""
    for r in range(ROUNDS):
        port = harness.free_port(kind=socket.SOCK_DGRAM)
        with Daemon(listen=("127.0.0.1:0", "udp:127.0.0.1:%d" % port)) as d:
            d.start()
            stop = threading.Event()
            loaders = [threading.Thread(target=_connect_loop, args=(port, stop, socket.SOCK_DGRAM),
                                        daemon=True) for _ in range(3)]
            for t in loaders:
                t.start()
            time.sleep(0.5)
            d.signal(signal.SIGTERM)
            try:
                _exit_cleanly(d, "round %d" % r)
            finally:
                stop.set()
                for t in loaders:
                    t.join(5)


def _stream_until(socks, t_stop, timeout=60):
    """Streams random data on every socket until t_stop (monotonic), then
    half-closes each and reads to EOF. Returns [(sent sha256, echoed
    sha256, bytes sent, bytes echoed, how it ended)]."""
    import selectors
    sel = selectors.DefaultSelector()
    chunk = os.urandom(256 * 1024)
    st = []
    for i, s in enumerate(socks):
        s.setblocking(False)
        e = {"sock": s, "sent": hashlib.sha256(), "got": hashlib.sha256(), "n_sent": 0,
             "n_got": 0, "off": i * 997 % len(chunk), "shut": False, "end": None}
        st.append(e)
        sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, e)
    open_ = len(st)
    deadline = time.monotonic() + timeout
    while open_ and time.monotonic() < deadline:
        now = time.monotonic()
        for key, ev in sel.select(0.2):
            e = key.data
            s = e["sock"]
            if ev & selectors.EVENT_WRITE:
                if now < t_stop:
                    piece = chunk[e["off"]:] + chunk[:e["off"]]
                    try:
                        n = s.send(piece[:64 * 1024])
                    except BlockingIOError:
                        n = 0
                    except OSError as err:
                        e["end"] = "send: %s" % err
                        n = 0
                    e["sent"].update(piece[:n])
                    e["n_sent"] += n
                    e["off"] = (e["off"] + n) % len(chunk)
                    if e["end"]:
                        sel.unregister(s)
                        open_ -= 1
                        continue
                elif not e["shut"]:
                    s.shutdown(socket.SHUT_WR)
                    e["shut"] = True
                    sel.modify(s, selectors.EVENT_READ, e)
            if ev & selectors.EVENT_READ:
                try:
                    data = harness.recv_some(s)
                except BlockingIOError:
                    continue
                except OSError as err:
                    data, e["end"] = b"", "recv: %s" % err
                if data:
                    e["got"].update(data)
                    e["n_got"] += len(data)
                    continue
                e["end"] = e["end"] or ("EOF" if e["shut"] else "EOF while still sending")
                sel.unregister(s)
                open_ -= 1
        for e in st:
            if not e["shut"] and time.monotonic() >= t_stop and not e["end"]:
                try:
                    sel.modify(e["sock"], selectors.EVENT_READ | selectors.EVENT_WRITE, e)
                except (KeyError, ValueError):
                    pass
    sel.close()
    return [(e["sent"].hexdigest(), e["got"].hexdigest(), e["n_sent"], e["n_got"],
             e["end"] or "unfinished") for e in st]


@harness.case(timeout=120, alone=True)
def sigterm_many_streams():
    """50 clients streaming at full speed when SIGTERM comes keep being
    served until they half-close: every byte comes back (hashes), then
    EOF, then exit 0."""
    harness.raise_nofile()
    with Daemon(config="shutdown_timeout = 20s\n") as d:
        d.start()
        socks = [d.connect() for _ in range(50)]
        t0 = time.monotonic()
        timer = threading.Timer(1.0, lambda: d.signal(signal.SIGTERM))
        timer.start()
        res = _stream_until(socks, t0 + 3.0)
        timer.join()
        bad = [(i, r) for i, r in enumerate(res) if r[0] != r[1] or r[4] != "EOF"]
        lost = sum(r[2] - r[3] for r in res)
        print("sent %d bytes on %d connections, %d not echoed" % (
            sum(r[2] for r in res), len(res), lost))
        check_equal("connections cut or with echoes missing after SIGTERM (index, "
                    "(sent sha, echoed sha, sent, echoed, end))", [], bad[:3])
        for s in socks:
            s.close()
        _exit_cleanly(d, "after the streams ended")


if __name__ == "__main__":
    harness.main()
