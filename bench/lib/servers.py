"""The servers under test: started fresh for each run, pinned to a CPU,
measured through /proc, stopped."""

import datetime
import os
import signal
import socket
import subprocess
import time

from .common import read_first


def tree_pids(root):
    """root and all its descendants"""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parent[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    pids, todo = {root}, [root]
    while todo:
        p = todo.pop()
        for c, pp in parent.items():
            if pp == p and c not in pids:
                pids.add(c)
                todo.append(c)
    return pids


def tree_usage(root):
    """(RSS KiB, open fds) summed over the process tree"""
    rss = fds = 0
    for p in tree_pids(root):
        v = read_first(f"/proc/{p}/status", r"VmRSS:\s+(\d+)", "0")
        rss += int(v)
        try:
            fds += len(os.listdir(f"/proc/{p}/fd"))
        except OSError:
            pass
    return rss, fds


class Server:
    def __init__(self, name, command, port, cpu, logf):
        self.name, self.port = name, port
        self.command = command.replace("{port}", str(port))
        logf.write(f"=== {datetime.datetime.now():%H:%M:%S} {name}: {self.command}\n")
        logf.flush()
        argv = ["bash", "-c", "exec " + self.command]
        if cpu is not None:
            argv = ["taskset", "-c", str(cpu)] + argv
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def wait_ready(self, timeout=10.0, proto="tcp"):
        """Until one echo works on the port."""
        end = time.monotonic() + timeout
        msg = b"echod-bench readiness probe\n"
        while time.monotonic() < end:
            if not self.alive():
                return f"exited at start (status {self.proc.returncode})"
            if proto == "udp":
                if self._udp_echoes(msg):
                    return None
                continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    s.sendall(msg)
                    got = b""
                    while len(got) < len(msg):
                        chunk = s.recv(len(msg) - len(got))
                        if not chunk:
                            break
                        got += chunk
                    if got == msg:
                        return None
            except OSError:
                pass
            time.sleep(0.05)
        return f"did not echo on port {self.port} within {timeout:g} s"

    def _udp_echoes(self, msg):
        """one datagram sent, the same one back within 50 ms"""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.05)
            try:
                s.connect(("127.0.0.1", self.port))
                s.send(msg)
                return s.recv(len(msg) + 1) == msg
            except OSError:  # refused (not bound yet) or timed out
                time.sleep(0.05)
                return False

    def stop(self):
        if self.alive():
            pids = tree_pids(self.pid)
            try:
                os.killpg(self.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                pass
            for p in pids | tree_pids(self.pid):
                try:
                    os.kill(p, signal.SIGKILL)
                except OSError:
                    pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
