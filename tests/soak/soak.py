#!/usr/bin/env python3
"""Soak: a bounded mixed workload against one echod, verifying every byte.

TCP workers reconnect over and over; each connection sends bursts of
random-sized messages (1 B .. 1 MiB, log-uniform, several back to back),
checks each burst by SHA-256 (loss, corruption or reordering all show),
then ends one of three ways: close, half-close (the pending echo must
still come, then EOF), or reset (SO_LINGER {1, 0}) with data in flight.
A UDP worker sends sequence-tagged datagrams and checks every reply.
Meanwhile SIGHUP reloads alternate two valid configs (idle_timeout,
buffer_size) and SIGUSR1 asks for statistics.

After the load: 0 connections, echod's RSS and fd count back near their
idle values, and SIGTERM exits 0 (no sanitizer report).

usage: soak.py [--duration SECONDS] [--seed N] [--workers N]
       (default duration: $ECHOD_SOAK_SECONDS, else 60; env ECHOD)
"""

import argparse
import hashlib
import os
import random
import selectors
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402
from harness import MIB, Daemon, check, check_bytes  # noqa: E402

CONFIGS = ("idle_timeout = 0\nbuffer_size = 64K\nshutdown_timeout = 5s\n",
           "idle_timeout = 120s\nbuffer_size = 16K\nshutdown_timeout = 5s\n")
LINGER_RESET = struct.pack("ii", 1, 0)


class Totals:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {k: 0 for k in ("connections", "bursts", "messages", "tcp_bytes", "closes",
                                 "half_closes", "resets", "reset_bytes_unverified",
                                 "datagrams", "udp_bytes")}

    def add(self, **kw):
        with self.lock:
            for k, v in kw.items():
                self.c[k] += v


def _size(rng):
    """1 B .. 1 MiB, log-uniform (most messages small, some large)."""
    return max(1, min(MIB, int(2 ** rng.uniform(0, 20))))


def _exchange(sock, payload, shut, timeout):
    """Sends payload (optionally then SHUT_WR) while reading; returns what
    came back: len(payload) bytes, or everything up to EOF when shut."""
    scratch = memoryview(bytearray(256 * 1024))
    out = memoryview(payload)
    sent = 0
    buf = bytearray()
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    deadline = time.monotonic() + timeout
    shut_done = False
    try:
        while True:
            if not shut and len(buf) >= len(out):
                return bytes(buf)
            left = deadline - time.monotonic()
            if left <= 0:
                harness.fail("echo within %ss" % timeout, "%d bytes back%s" % (
                    len(out), " then EOF" if shut else ""), "sent %d, got %d" % (sent, len(buf)))
            for _, ev in sel.select(min(left, 1.0)):
                if ev & selectors.EVENT_WRITE:
                    if sent < len(out):
                        try:
                            sent += sock.send(out[sent:sent + 256 * 1024])
                        except BlockingIOError:
                            pass
                    if sent == len(out):
                        if shut and not shut_done:
                            sock.shutdown(socket.SHUT_WR)
                            shut_done = True
                        sel.modify(sock, selectors.EVENT_READ)
                if ev & selectors.EVENT_READ:
                    try:
                        n = sock.recv_into(scratch)
                    except BlockingIOError:
                        continue
                    if n == 0:
                        if shut and shut_done:
                            return bytes(buf)
                        harness.fail("echo", "%d bytes back" % len(out), "EOF after %d" % len(buf))
                    buf += scratch[:n]
    finally:
        sel.close()


class TcpWorker(threading.Thread):
    def __init__(self, n, listener, seed, deadline, totals, stop):
        super().__init__(daemon=True)
        self.n, self.listener, self.deadline = n, listener, deadline
        self.rng = random.Random(seed * 1000 + n)
        self.totals, self.stop = totals, stop
        self.error = None

    def run(self):
        try:
            while time.monotonic() < self.deadline and not self.stop.is_set():
                self.one_connection()
        except BaseException as e:
            self.error = e
            self.stop.set()

    def one_connection(self):
        rng = self.rng
        s = harness.connect(self.listener, timeout=30)
        self.totals.add(connections=1)
        try:
            for b in range(rng.randint(1, 6)):
                sizes = [_size(rng) for _ in range(rng.randint(1, 4))]
                payload = b"".join(rng.randbytes(k) for k in sizes)
                got = _exchange(s, payload, False, 60)
                if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
                    check_bytes("worker %d: burst %d of %d messages (sha256)" % (self.n, b, len(sizes)),
                                payload, got)
                self.totals.add(bursts=1, messages=len(sizes), tcp_bytes=len(payload))
            end = rng.random()
            if end < 0.4:
                s.close()
                self.totals.add(closes=1)
            elif end < 0.7:
                payload = rng.randbytes(_size(rng))
                got = _exchange(s, payload, True, 60)
                if hashlib.sha256(got).digest() != hashlib.sha256(payload).digest():
                    check_bytes("worker %d: half-closed last message then EOF" % self.n, payload, got)
                self.totals.add(half_closes=1, tcp_bytes=len(payload), messages=1)
            else:
                s.setblocking(False)
                junk = rng.randbytes(_size(rng))
                try:
                    n = s.send(junk)
                except BlockingIOError:
                    n = 0
                if rng.random() < 0.5:
                    time.sleep(0.005)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER_RESET)
                self.totals.add(resets=1, reset_bytes_unverified=n)
        finally:
            s.close()


class UdpWorker(threading.Thread):
    def __init__(self, listener, seed, deadline, totals, stop):
        super().__init__(daemon=True)
        self.listener, self.deadline = listener, deadline
        self.rng = random.Random(seed * 1000 + 999)
        self.totals, self.stop = totals, stop
        self.error = None

    def run(self):
        try:
            with socket.socket(self.listener.family, socket.SOCK_DGRAM) as u:
                u.connect(self.listener.address)
                u.settimeout(5)
                seq = 0
                while time.monotonic() < self.deadline and not self.stop.is_set():
                    body = self.rng.randbytes(self.rng.randint(0, 8192))
                    msg = struct.pack("!Q", seq) + body
                    u.send(msg)
                    try:
                        got = u.recv(65536)
                    except socket.timeout:
                        harness.fail("UDP reply to datagram #%d" % seq, "a reply within 5s", "none")
                    check_bytes("UDP reply to datagram #%d" % seq, msg, got)
                    self.totals.add(datagrams=1, udp_bytes=len(msg))
                    seq += 1
                    time.sleep(0.002)
        except BaseException as e:
            self.error = e
            self.stop.set()


def soak(duration, seed, workers):
    harness.raise_nofile()
    totals = Totals()
    with Daemon(config=CONFIGS[0], listen=("127.0.0.1:0", "udp:127.0.0.1:0")) as d:
        d.start()
        tcp, udp = d.listener("tcp"), d.listener("udp")
        # Warm up every path (small, bulk/spliced, UDP) before the idle figures.
        w = d.connect()
        harness.echo(w, b"warm up")
        harness.echo(w, os.urandom(4 * MIB))
        w.close()
        with socket.socket(udp.family, socket.SOCK_DGRAM) as u:
            u.settimeout(5)
            u.sendto(b"warm up", udp.address)
            check_bytes("UDP warm-up", b"warm up", u.recv(100))
        d.wait_stats(lambda st: st[0] == 0, "warm-up closed")
        time.sleep(0.5)
        rss0, fds0 = d.rss_kib(), d.open_fds()
        sanitized = "libasan" in open("/proc/%d/maps" % d.pid).read()
        print("soak: %ds, seed %d, %d TCP workers + 1 UDP; idle VmRSS %d KiB, %d fds%s" % (
            duration, seed, workers, rss0, fds0, " (AddressSanitizer build)" if sanitized else ""))
        sys.stdout.flush()

        t0 = time.monotonic()
        deadline = t0 + duration
        stop = threading.Event()
        threads = [TcpWorker(i, tcp, seed, deadline, totals, stop) for i in range(workers)]
        threads.append(UdpWorker(udp, seed, deadline, totals, stop))
        for t in threads:
            t.start()
        sighups = sigusr1s = 0
        peak_rss = rss0
        peak_fds = fds0
        next_report = t0 + 60
        while time.monotonic() < deadline and not stop.is_set():
            stop.wait(1.0)
            if stop.is_set() or not d.alive():
                break
            tick = int(time.monotonic() - t0)
            if tick % 2 == 0:
                d.write_config(CONFIGS[(sighups + 1) % 2])
                d.signal(signal.SIGHUP)
                sighups += 1
            else:
                d.signal(signal.SIGUSR1)
                sigusr1s += 1
            peak_rss = max(peak_rss, d.rss_kib())
            peak_fds = max(peak_fds, d.open_fds())
            if time.monotonic() >= next_report:
                next_report += 60
                with totals.lock:
                    c = dict(totals.c)
                print("  %4.0fs: %d connections, %.0f MiB TCP + %d datagrams verified, VmRSS %d KiB,"
                      " %d fds" % (time.monotonic() - t0, c["connections"], c["tcp_bytes"] / MIB,
                                   c["datagrams"], d.rss_kib(), d.open_fds()))
                sys.stdout.flush()
        stop.set()
        for t in threads:
            t.join(120)
        d.check_alive("echod keeps running through the soak")
        for t in threads:
            if t.error is not None:
                raise t.error
        check(not any(t.is_alive() for t in threads), "workers stop", "all done", "some still running")
        elapsed = time.monotonic() - t0

        st = d.wait_stats(lambda s: s[0] == 0, "every soak connection closed", timeout=30)
        time.sleep(1.0)
        rss1, fds1 = d.rss_kib(), d.open_fds()
        c = totals.c
        reloads = len(d.find_log(r"configuration reloaded"))
        print("soak done in %.0fs: %d connections (%d closed, %d half-closed, %d reset), %d bursts,"
              " %d messages, %.1f MiB TCP verified, %d datagrams (%.1f MiB) verified, %.1f MiB sent"
              " before resets (not echoed by design)" % (
                  elapsed, c["connections"], c["closes"], c["half_closes"], c["resets"], c["bursts"],
                  c["messages"], c["tcp_bytes"] / MIB, c["datagrams"], c["udp_bytes"] / MIB,
                  c["reset_bytes_unverified"] / MIB))
        print("signals: %d SIGHUP (%d reloads logged), %d SIGUSR1; echod stats: %d total connections,"
              " %d bytes echoed" % (sighups, reloads, sigusr1s, st[1], st[2]))
        print("VmRSS idle %d KiB, peak %d KiB, after %d KiB; fds idle %d, peak %d, after %d" % (
            rss0, peak_rss, rss1, fds0, peak_fds, fds1))
        check(c["connections"] > 0 and c["datagrams"] > 0, "soak ran", "connections and datagrams", c)
        check(st[1] >= c["connections"] + 1, "echod counted every soak connection",
              ">= %d total" % (c["connections"] + 1), st[1])
        check(st[2] >= c["tcp_bytes"], "bytes echoed (stats) cover the verified bytes",
              ">= %d" % c["tcp_bytes"], st[2])
        check(reloads == sighups, "every SIGHUP reloaded", sighups, reloads)
        check(fds1 <= fds0 + 8, "fds after the load", "at most %d (idle %d + 8)" % (fds0 + 8, fds0), fds1)
        margin = (64 if sanitized else 16) * 1024
        check(rss1 <= rss0 + margin, "VmRSS after the load",
              "at most idle + %d KiB = %d KiB" % (margin, rss0 + margin), "%d KiB" % rss1)
        t_term = time.monotonic()
        d.stop(timeout=20)
        print("SIGTERM: exit 0 after %.2fs" % (time.monotonic() - t_term))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float,
                   default=float(os.environ.get("ECHOD_SOAK_SECONDS", "60")))
    p.add_argument("--seed", type=int, default=int(os.environ.get("ECHOD_SOAK_SEED", "0")) or
                   int(time.time()) % 100000)
    p.add_argument("--workers", type=int, default=6)
    o = p.parse_args()
    t0 = time.monotonic()
    try:
        harness.require_echod()
        soak(int(o.duration), o.seed, o.workers)
    except harness.Skip as e:
        print("SKIP soak: %s" % e)
        sys.exit(harness.EXIT_SKIP)
    except harness.Failure as e:
        print("FAIL soak (seed %d): %s" % (o.seed, e))
        harness.dump_logs()
        harness.kill_all()
        sys.exit(1)
    except Exception:
        import traceback
        print("FAIL soak (seed %d): unexpected error" % o.seed)
        traceback.print_exc(file=sys.stdout)
        harness.dump_logs()
        harness.kill_all()
        sys.exit(1)
    print("PASS soak (%.0fs)" % (time.monotonic() - t0))


if __name__ == "__main__":
    main()
