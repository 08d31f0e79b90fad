"""One run: echod-bench against a server, with perf counting the
server's syscalls and CPU time while it measures."""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from .common import fmt
from .servers import Server, tree_usage


class BenchProcess:
    """echod-bench with its stderr read in a thread, to follow its phases
    (echod-bench -v announces them as they begin)."""

    def __init__(self, argv, on_measure=None, on_drain=None):
        self.on_measure, self.on_drain = on_measure, on_drain
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.lines = []
        self.holding = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        measuring = False
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))
            if "echod-bench: measuring for" in line:
                measuring = True
                if self.on_measure:
                    self.on_measure()
            elif "echod-bench: draining" in line and measuring and self.on_drain:
                self.on_drain()
            elif "echod-bench: holding" in line:
                self.holding.set()
        self.holding.set()

    def finish(self, timeout):
        """stdout (one JSON line: it cannot fill the pipe before the end)"""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        out = self.proc.stdout.read()
        self.proc.stdout.close()
        self.thread.join(timeout=5)
        return out


class PerfCounter:
    """perf stat attached to the server with its counters off; enable() and
    disable() switch them through perf's control fifo, so that they cover
    exactly echod-bench's measured time."""

    def __init__(self, pid):
        self.dir = tempfile.mkdtemp(prefix="echod-perf-")
        self.ctl, self.ack = os.path.join(self.dir, "ctl"), os.path.join(self.dir, "ack")
        self.out = os.path.join(self.dir, "out")
        os.mkfifo(self.ctl)
        os.mkfifo(self.ack)
        self.error = None
        self.enabled = self.disabled = False
        self.proc = subprocess.Popen(
            ["perf", "stat", "-x,", "-o", self.out, "-D", "-1", "--control",
             f"fifo:{self.ctl},{self.ack}", "-e", "raw_syscalls:sys_enter,task-clock",
             "-p", str(pid)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True)
        self.ack_fd = os.open(self.ack, os.O_RDONLY | os.O_NONBLOCK)
        self.ctl_fd = None
        end = time.monotonic() + 10
        while self.ctl_fd is None and time.monotonic() < end and self.proc.poll() is None:
            try:
                self.ctl_fd = os.open(self.ctl, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.01)
        if self.ctl_fd is None:
            self.error = "perf did not start"

    def _command(self, word):
        if self.ctl_fd is None:
            return False
        os.write(self.ctl_fd, (word + "\n").encode())
        end = time.monotonic() + 2
        while time.monotonic() < end:
            try:
                if b"ack" in os.read(self.ack_fd, 64):
                    return True
            except BlockingIOError:
                pass
            time.sleep(0.001)
        self.error = f"perf did not acknowledge '{word}'"
        return False

    def enable(self):
        self.enabled = self._command("enable")

    def disable(self):
        if self.enabled:
            self.disabled = self._command("disable")

    def finish(self):
        """{'syscalls': n, 'task_ms': ms} or None (self.error says why)"""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            _, err = self.proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        for fd in (self.ctl_fd, self.ack_fd):
            if fd is not None:
                os.close(fd)
        res = {}
        try:
            with open(self.out) as f:
                for line in f:
                    fields = line.strip().split(",")
                    if len(fields) < 3:
                        continue
                    try:
                        if fields[2].startswith("raw_syscalls:sys_enter"):
                            res["syscalls"] = float(fields[0])
                        elif fields[2].startswith("task-clock"):
                            res["task_ms"] = float(fields[0])
                    except ValueError:
                        pass
        except OSError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)
        if not (self.enabled and self.disabled):
            self.error = self.error or "the measured time was not seen"
            return None
        if "syscalls" not in res or "task_ms" not in res:
            self.error = "no counts from perf: " + (err or "").strip()[-200:]
            return None
        return res


def bench_argv(bench_bin, bcpu, mode, args, target):
    argv = [bench_bin, "-m", mode] + args + ["--json", "-q", "-v", target]
    return ["taskset", "-c", str(bcpu)] + argv if bcpu is not None else argv


def start_streams(opts, sc, bench_bin, bcpu, target):
    """mixed: the streaming neighbours, measuring before the ping-pong
    starts and until after it ends; returns them once they measure."""
    args = list(sc.stream_args) + ["-d", f"{opts.duration + opts.warmup + 2:g}",
                                   "-w", f"{opts.warmup:g}"]
    measuring = threading.Event()
    streams = BenchProcess(bench_argv(bench_bin, bcpu, "stream", args, target),
                           on_measure=measuring.set)
    end = time.monotonic() + 60
    while not measuring.wait(0.05) and streams.proc.poll() is None and time.monotonic() < end:
        pass
    return streams, args


def run_one(opts, sc, srv_name, srv_cmd, rnd, port, cpus, logf, bench_bin, use_perf):
    rec = {"server": srv_name, "scenario": sc.name, "round": rnd, "ok": False}
    scpu = cpus[0] if len(cpus) > 1 else None
    bcpu = cpus[1] if len(cpus) > 1 else None
    args = list(sc.quick if opts.quick else sc.args)
    if sc.mode == "idle":
        args += ["-d", f"{opts.hold:g}"]
    else:
        args += ["-d", f"{opts.duration:g}", "-w", f"{opts.warmup:g}"]
    mode = "pingpong" if sc.mode == "mixed" else sc.mode
    target = ("udp:" if sc.proto == "udp" else "") + f"127.0.0.1:{port}"
    argv = bench_argv(bench_bin, bcpu, mode, args, target)
    rec["bench_args"] = ["-m", mode] + args

    srv = Server(srv_name, srv_cmd, port, scpu, logf)
    streams = None
    try:
        err = srv.wait_ready(proto=sc.proto)
        if err:
            rec["error"] = "server " + err
            return rec
        time.sleep(0.1)
        base_rss, base_fds = tree_usage(srv.pid)
        limit = 60 + (opts.hold if sc.mode == "idle" else opts.duration + opts.warmup) + 150
        if sc.mode == "mixed":
            streams, sargs = start_streams(opts, sc, bench_bin, bcpu, target)
            rec["stream_args"] = ["-m", "stream"] + sargs
        # mixed: the server's cost is the streams' as much as the
        # ping-pong's, so it is not divided by the messages
        perf = (PerfCounter(srv.pid) if use_perf and sc.mode not in ("idle", "mixed")
                else None)
        bench = BenchProcess(argv, on_measure=perf and perf.enable,
                             on_drain=perf and perf.disable)
        if sc.mode == "idle":
            if bench.holding.wait(timeout=limit) and bench.proc.poll() is None:
                time.sleep(min(0.5, opts.hold / 3))
                rec["rss_base_kb"], rec["fds_base"] = base_rss, base_fds
                rec["rss_hold_kb"], rec["fds_hold"] = tree_usage(srv.pid)
        out = bench.finish(timeout=limit)
        if perf:
            rec["perf"] = perf.finish()
            if rec["perf"] is None:
                rec["perf_error"] = perf.error
        rec["bench_status"] = bench.proc.returncode
        rec["bench_stderr"] = quiet_lines(bench)
        try:
            rec["result"] = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            rec["error"] = "no result from echod-bench: " + " | ".join(bench.lines[-3:])
            return rec
        if streams:
            sout = streams.finish(timeout=limit)
            streams = None
            try:
                rec["stream"] = json.loads(sout.strip().splitlines()[-1])
            except (ValueError, IndexError):
                rec["error"] = "no result from the streams"
                return rec
            if rec["stream"].get("errors") or streams_failed(rec):
                rec["error"] = "the streams counted errors"
                return rec
        if not srv.alive():
            rec["error"] = f"server exited during the run (status {srv.proc.returncode})"
            return rec
        derive(sc, rec)
        rec["ok"] = True
        return rec
    finally:
        if streams:
            streams.proc.kill()
            streams.finish(timeout=5)
        srv.stop()


def quiet_lines(bench):
    """echod-bench's stderr without its phase announcements"""
    return [ln for ln in bench.lines if not re.search(
        r"echod-bench: (warming|measuring|draining|opened|holding)", ln)][:20]


def streams_failed(rec):
    return rec["stream"].get("bytes", 0) <= 0


def derive(sc, rec):
    """per-unit costs from the raw figures"""
    r = rec["result"]
    if sc.mode == "idle":
        n = r.get("opened", 0)
        if n and "rss_hold_kb" in rec:
            rec["rss_per_conn"] = (rec["rss_hold_kb"] - rec["rss_base_kb"]) * 1024 / n
            rec["fds_per_conn"] = (rec["fds_hold"] - rec["fds_base"]) / n
        return
    p = rec.get("perf")
    # the work done in the measured time, which perf's counters cover
    work = {"msg": r.get("messages", 0), "dgram": r.get("messages", 0),
            "MB": r.get("bytes", 0) / 1e6, "conn": r.get("messages", 0)}[sc.unit]
    if "stream" in rec:
        rec["stream_mb_per_s"] = rec["stream"].get("mb_per_s")
    if work > 0 and r.get("duration_s", 0) > 0:
        # echod-bench's own CPU for the same work
        rec["client_us_per_unit"] = r.get("client_cpu", 0) * r["duration_s"] * 1e6 / work
    if p and work > 0 and r.get("duration_s", 0) > 0:
        rec["syscalls_per_unit"] = p["syscalls"] / work
        rec["us_per_unit"] = p["task_ms"] * 1000 / work
        rec["server_cores"] = p["task_ms"] / 1000 / r["duration_s"]


def run_errors(rec):
    r = rec.get("result") or {}
    return int(r.get("errors", 0)) + int((rec.get("stream") or {}).get("errors", 0))


def describe(sc, rec):
    if not rec["ok"]:
        return "FAILED: " + rec.get("error", "?")
    r = rec["result"]
    if sc.mode == "idle":
        s = (f"{r['opened']:,} held, open {r['conns_per_s']:,.0f} conn/s, "
             f"RSS/conn {fmt(rec.get('rss_per_conn'))} B, fds/conn "
             f"{fmt(rec.get('fds_per_conn'), 2)}")
    else:
        s = f"{fmt(r[sc.metric])} {sc.metric_unit}"
        if sc.mode != "stream":
            s += f", p50 {fmt(r['latency_us']['p50'])} us, p99 {fmt(r['latency_us']['p99'])} us"
        if sc.mode == "udp":
            s += f", {r.get('lost', 0)} lost"
        if "stream_mb_per_s" in rec:
            s += f", streams beside it {fmt(rec['stream_mb_per_s'])} MB/s"
        if "syscalls_per_unit" in rec:
            s += (f", server {fmt(rec['syscalls_per_unit'])} syscalls/{sc.unit}, "
                  f"{fmt(rec['us_per_unit'])} us/{sc.unit}")
    return s + f", errors {run_errors(rec)}"
