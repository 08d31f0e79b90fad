#!/usr/bin/env python3
"""Scaling out, with real components: a real HAProxy (TCP mode,
send-proxy-v2, health checks on a plain port) in front of two echod
instances on proxy: listeners, and two instances sharing one port with
reuse_port. Runs inside a private network namespace (root), so nothing
leaves the machine."""

import hashlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import harness
from harness import Daemon, check, check_equal

CLIENT_SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]


def _client(src, port, payload):
    """One client from source address src: sends payload, half-closes,
    reads to EOF. Returns (sha256 sent, sha256 received, bytes back)."""
    h = hashlib.sha256()
    n = 0
    with socket.socket() as s:
        s.settimeout(20)
        s.bind((src, 0))
        s.connect(("127.0.0.1", port))

        def send():
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        # Its own thread and buffers: clients run in parallel threads.
        t = threading.Thread(target=send, daemon=True)
        t.start()
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            h.update(chunk)
            n += len(chunk)
        t.join(20)
    return hashlib.sha256(payload).hexdigest(), h.hexdigest(), n


HAPROXY_CFG = """global
    maxconn 2000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend echo
    bind 127.0.0.1:{front}
    default_backend echod
backend echod
    balance roundrobin
    server e1 127.0.0.1:{p1} send-proxy-v2 check port {h1} inter 300ms
    server e2 127.0.0.1:{p2} send-proxy-v2 check port {h2} inter 300ms
"""


@harness.case(timeout=120, alone=True)
def haproxy_in_front():
    """Clients from 4 addresses through HAProxy to two echod instances:
    every byte back (hashes), both instances serve, and each logs the real
    client addresses from the PROXY v2 header, not HAProxy's."""
    if not shutil.which("haproxy"):
        raise harness.Skip("haproxy is not installed (Debian package haproxy)")
    if not harness.in_private_netns():
        return
    ports = [harness.free_port() for _ in range(5)]
    front, p1, h1, p2, h2 = ports
    conf = "log_connections = yes\n"
    with Daemon(config=conf, listen=["proxy:127.0.0.1:%d" % p1, "127.0.0.1:%d" % h1]) as e1, \
            Daemon(config=conf, listen=["proxy:127.0.0.1:%d" % p2, "127.0.0.1:%d" % h2]) as e2, \
            tempfile.TemporaryDirectory(prefix="echod-lb-") as tmp:
        e1.start()
        e2.start()
        cfg = os.path.join(tmp, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write(HAPROXY_CFG.format(front=front, p1=p1, h1=h1, p2=p2, h2=h2))
        hp = subprocess.Popen(["haproxy", "-db", "-f", cfg], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", front), timeout=1,
                                             source_address=("127.0.0.9", 0)).close()
                    break
                except OSError:
                    check(time.monotonic() < deadline and hp.poll() is None,
                          "HAProxy listens", "a connection to its frontend", "refused")
                    time.sleep(0.1)
            time.sleep(1)  # both servers seen up by the health checks
            results = []
            lock = threading.Lock()

            def run(i):
                payload = os.urandom(64 * 1024 + i * 4099)
                r = _client(CLIENT_SOURCES[i % len(CLIENT_SOURCES)], front, payload)
                with lock:
                    results.append(r)
            threads = [threading.Thread(target=run, args=(i,)) for i in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            bad = [r for r in results if r[0] != r[1]]
            total = sum(r[2] for r in results)
            check_equal("clients whose echo through HAProxy differs", [], bad)
            check_equal("clients finished", 40, len(results))
            counts, seen = [], set()
            for name, e, p in (("e1", e1, p1), ("e2", e2, p2)):
                e.wait_stats(lambda st: st[0] == 0, "all connections closed")
                # Its PROXY listener's lines (health checks reach the plain one).
                lines = e.find_log(r"^echod: connection from \S+ on 127\.0\.0\.1:%d " % p)
                sources = sorted({re.match(r"^echod: connection from ([\d.]+):", line).group(1)
                                  for line in lines if re.match(r"^echod: connection from [\d.]+:", line)})
                counts.append(len(lines))
                print("%s: %d connections through HAProxy, client sources in its log: %s" % (
                    name, len(lines), sources))
                check(len(lines) >= 10, "%s serves its share" % name, ">= 10 of 40 connections",
                      len(lines))
                # Which clients reach which instance is HAProxy's round robin
                # over threads started in no fixed order: each instance must
                # log only real client addresses (the probe's among them),
                # never HAProxy's own, and together they log every client.
                check(set(sources) <= set(CLIENT_SOURCES) | {"127.0.0.9"} and len(sources) >= 2,
                      "%s logs the real client addresses" % name,
                      "a subset of %s" % CLIENT_SOURCES, sources)
                seen |= set(sources)
            check(seen >= set(CLIENT_SOURCES), "both instances together log every client",
                  CLIENT_SOURCES, sorted(seen))
            print("40 clients, %d bytes echoed through HAProxy, split %s" % (total, counts))
            e1.stop()
            e2.stop()
        finally:
            hp.terminate()
            try:
                hp.wait(10)
            except subprocess.TimeoutExpired:
                hp.kill()


@harness.case()
def reuse_port_instances():
    """Two instances on one port with reuse_port = yes: both serve."""
    port = harness.free_port()
    conf = "reuse_port = yes\n"
    addr = "127.0.0.1:%d" % port
    with Daemon(config=conf, listen=[addr]) as a, Daemon(config=conf, listen=[addr]) as b:
        a.start()
        b.start()
        for i in range(200):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                harness.echo(s, b"client %d\n" % i)
        ta = a.wait_stats(lambda st: st[0] == 0, "closed")[1]
        tb = b.wait_stats(lambda st: st[0] == 0, "closed")[1]
        print("200 connections: %d to one instance, %d to the other" % (ta, tb))
        check(ta + tb == 200 and ta >= 20 and tb >= 20, "both instances serve",
              "200 in all, at least 20 each", (ta, tb))
        a.stop()
        b.stop()


if __name__ == "__main__":
    harness.main()
