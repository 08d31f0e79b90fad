"""The markdown report: medians, spreads, ratios and the targets table."""

import os
import shlex
import statistics

from .common import PROG, REPO, fmt
from .measure import run_errors


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def value(sc, rec, key):
    if not rec["ok"]:
        return None
    if key in ("metric",):
        key = sc.metric
    if key in rec:
        return rec[key]
    r = rec["result"]
    if key in r:
        return r[key]
    if key.startswith("lat_"):
        return r["latency_us"].get(key[4:]) if r["latency_us"]["count"] else None
    return None


class Table:
    def __init__(self, runs, scens, servers, baseline):
        self.runs, self.scens, self.servers, self.baseline = runs, scens, servers, baseline

    def vals(self, sc, srv, key):
        return [value(sc, r, key) for r in self.runs
                if r["scenario"] == sc.name and r["server"] == srv]

    def median(self, sc, srv, key):
        return med(self.vals(sc, srv, key))

    def ratio(self, sc, srv, key):
        """median over rounds of (server / baseline) in the same round"""
        rs = []
        for rec in self.runs:
            if rec["scenario"] != sc.name or rec["server"] != srv:
                continue
            base = [b for b in self.runs if b["scenario"] == sc.name and
                    b["server"] == self.baseline and b["round"] == rec["round"]]
            a = value(sc, rec, key)
            b = value(sc, base[0], key) if base else None
            if a is not None and b:
                rs.append(a / b)
        return med(rs)

    def ratio_best(self, sc, srv, others, key, lower_is_better=True):
        """median over rounds of (server / the best of `others` in the same round)"""
        rs = []
        for rec in self.runs:
            if rec["scenario"] != sc.name or rec["server"] != srv:
                continue
            vs = [value(sc, b, key) for b in self.runs if b["scenario"] == sc.name and
                  b["server"] in others and b["round"] == rec["round"]]
            vs = [v for v in vs if v]
            a = value(sc, rec, key)
            if a is not None and vs:
                rs.append(a / (min(vs) if lower_is_better else max(vs)))
        return med(rs)

    def cell(self, sc, srv, key, nd=None, spread=False):
        xs = [x for x in self.vals(sc, srv, key) if x is not None]
        if not xs:
            return "-"
        s = fmt(statistics.median(xs), nd)
        if spread and len(xs) > 1:
            s += f" ({fmt(min(xs), nd)}-{fmt(max(xs), nd)})"
        return s


# The targets echod is measured against (see bench/RESULTS.md): per
# scenario, what is compared, with what, and the bound.
TARGETS = [
    # (scenarios, label, kind, key, bound)
    (["pp1"], "syscalls/msg", "abs", "syscalls_per_unit", 3.0),
    (["pp100", "pp1000"], "syscalls/msg", "abs", "syscalls_per_unit", 2.0),
    (["pp100x16"], "syscalls/msg", "abs", "syscalls_per_unit", 0.12),
    (["pp1", "pp100", "pp1000", "pp100x16"], "server CPU/msg vs best reference",
     "best", "us_per_unit", 0.9),
    (["pp1", "pp100", "pp1000", "pp100x16"], "p50 latency vs best reference",
     "best", "lat_p50", 1.0),
    (["pp1", "pp100", "pp1000", "pp100x16"], "p99 latency vs best reference",
     "best", "lat_p99", 1.0),
    (["st1", "st10"], "server CPU/MB vs libuv", "vs:libuv", "us_per_unit", 0.65),
    (["st1", "st10"], "MB/s vs libuv (at least)", "vs_min:libuv", "mb_per_s", 1.15),
    (["mixed"], "ping-pong p99 latency beside streams (us)", "abs", "lat_p99", 2000),
    (["mixed"], "streams' MB/s beside it vs libuv's (at least)", "vs_min:libuv",
     "stream_mb_per_s", 1.0),
    (["udp32"], "syscalls/dgram", "abs", "syscalls_per_unit", 0.5),
    (["udp32"], "server CPU/dgram vs udp_naive", "vs:udp_naive", "us_per_unit", 0.9),
    (["conn32"], "syscalls/conn", "abs", "syscalls_per_unit", 7.0),
    (["conn32"], "server CPU/conn vs best reference", "best", "us_per_unit", 0.9),
    (["idle10k", "idlemax"], "RSS bytes/conn", "abs", "rss_per_conn", 128),
    (["idle10k", "idlemax"], "fds/conn (exactly)", "exact", "fds_per_conn", 1.0),
]


def target_rows(t, scens, subject, refs):
    """One row per target and scenario: the bound, echod's figure, met or not."""
    rows = []
    have = {sc.name: sc for sc in scens}
    for names, label, kind, key, bound in TARGETS:
        for name in names:
            sc = have.get(name)
            if not sc:
                continue
            if kind == "abs":
                x, shown, ok = t.median(sc, subject, key), "<= %g" % bound, None
                ok = x is not None and x <= bound
            elif kind == "exact":
                x, shown = t.median(sc, subject, key), "= %g" % bound
                ok = x is not None and abs(x - bound) < 0.0005
            elif kind == "best":
                if not refs:
                    continue
                x, shown = t.ratio_best(sc, subject, refs, key), "<= %gx" % bound
                ok = x is not None and x <= bound
            else:
                how, ref = kind.split(":")
                if ref not in refs:
                    continue
                r = Table(t.runs, t.scens, t.servers, ref)
                x = r.ratio(sc, subject, key)
                if how == "vs_min":
                    shown, ok = ">= %gx" % bound, x is not None and x >= bound
                else:
                    shown, ok = "<= %gx" % bound, x is not None and x <= bound
            nd = 3 if kind != "abs" else 2 if bound < 100 else 0
            fig = fmt(x, nd) + ("x" if kind not in ("abs", "exact") and x is not None else "")
            rows.append([name, label, shown, fig, "yes" if ok else "**no**"])
    errs = sum(run_errors(r) for r in t.runs if r["server"] == subject)
    failed = sum(1 for r in t.runs if r["server"] == subject and not r["ok"])
    rows.append(["all", "mismatches, stalls, errors, failed runs", "0",
                 f"{errs + failed}", "yes" if errs + failed == 0 else "**no**"])
    return rows


def bench_args_md(sc, opts):
    mode = "pingpong" if sc.mode == "mixed" else sc.mode
    s = "`" + " ".join(["-m", mode] + (sc.quick if opts.quick else sc.args)) + "`"
    if sc.mode == "mixed":
        s += " beside `" + " ".join(["-m", "stream"] + sc.stream_args) + "`"
    if sc.proto == "udp":
        s += " to `udp:127.0.0.1:PORT`"
    return s


def md_table(header, rows):
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out) + "\n"


def fairness_rows(t, sc, srv_names):
    rows = []
    for key, label in (("lat_p50", "ping-pong p50 (us)"), ("lat_p99", "ping-pong p99 (us)"),
                       ("lat_p999", "ping-pong p99.9 (us)"), ("msgs_per_s", "ping-pong msg/s"),
                       ("stream_mb_per_s", "streams MB/s")):
        rows.append([label] + [t.cell(sc, s, key, spread=True) for s in srv_names])
    return rows


def write_report(path, data_dir, opts, t, machine, servers, udp_servers, scens, plots,
                 started, finished, load0, load1, perf_note, bench_bin):
    srv_names = list(t.servers)
    rel = os.path.relpath(data_dir, os.path.dirname(os.path.abspath(path)))
    tp = [sc for sc in scens if sc.mode != "idle"]
    idle = [sc for sc in scens if sc.mode == "idle"]
    L = []
    L.append("# echod benchmark results\n")
    L.append(f"Measured {started:%Y-%m-%d %H:%M} to {finished:%H:%M} by `bench/run`"
             + (" in `--quick` mode (tiny durations: the figures mean nothing)"
                if opts.quick else "") + ". "
             f"{opts.rounds} round(s), interleaved; medians over rounds, "
             f"(min-max) where there are several rounds; ratios are the median of "
             f"per-round ratios to **{t.baseline}**.\n")
    refs = [n for n in srv_names if not n.startswith("echod")]
    if "echod" in srv_names:
        L.append("## Targets\n")
        L.append("echod's figures in this run against the targets; ratios are medians of "
                 "per-round ratios, \"best reference\" being the best of "
                 + (", ".join(refs) if refs else "(no reference was run)")
                 + " in the same round. Bounds are compared exactly, not rounded.\n")
        L.append(md_table(["scenario", "target", "bound", "echod", "met"],
                          target_rows(t, scens, "echod", refs)))
    if opts.notes:
        with open(opts.notes) as f:
            L.append(f.read().rstrip("\n") + "\n")
    L.append("## Machine\n")
    L.append(md_table(["", ""], [
        ["CPU", f"{machine['cpu']} ({machine['cores']} cores)"],
        ["memory", machine["memory"]],
        ["system", f"{machine['os']}, Linux {machine['kernel']}"],
        ["pinning", machine["pinning"]],
        ["RLIMIT_NOFILE (hard)", f"{machine['nofile']:,}"],
        ["load average", f"{load0} at start, {load1} at the end"],
        ["source", f"echod {machine['commit']}"],
        ["perf", machine["perf"] if not perf_note else f"not used: {perf_note}"],
    ]))
    L.append("## Commands\n")
    L.append("Reproduce (as root, from the source tree, after `meson compile -C build`):\n")
    L.append("```\n" + " ".join(shlex.quote(a) for a in [PROG] + opts.argv) + "\n```\n")
    L.append(md_table(["server", "command"],
                      [[n, f"`{c.replace(REPO + os.sep, '')}`"] for n, c in servers] +
                      [[n + " (udp)", f"`{c.replace(REPO + os.sep, '')}`"]
                       for n, c in udp_servers]))
    dur = (f"-d {opts.duration:g} -w {opts.warmup:g}")
    L.append(md_table(["scenario", "what", f"`echod-bench` arguments (plus `{dur}`, "
                       f"idle: `-d {opts.hold:g}`)"],
                      [[sc.name, sc.title, bench_args_md(sc, opts)] for sc in scens]))
    if any(sc.mode == "mixed" for sc in scens):
        L.append("mixed: the streams start first (`-d` longer by the warm-up and 2 s) and "
                 "measure through the whole measured time of the ping-pong, which starts "
                 "once they measure; both load generators share one CPU.\n")
    L.append("Server cost: `perf stat -e raw_syscalls:sys_enter,task-clock -p PID` on the "
             "server, its counters switched on and off (`-D -1 --control`) as echod-bench "
             "starts and ends its measured time, divided by the work echod-bench counted "
             "in that time. Idle: VmRSS and entries of /proc/PID/fd of the server "
             "(and any children) before the connections open and while they are held.\n")

    if tp:
        L.append("## Throughput\n")
        L.append(md_table(["scenario", "unit"] + srv_names,
                          [[sc.name, sc.metric_unit] +
                           [t.cell(sc, s, "metric", spread=True) for s in srv_names]
                           for sc in tp]))
        if len(srv_names) > 1:
            L.append(f"Ratio to {t.baseline} (>1 = faster):\n")
            L.append(md_table(["scenario"] + srv_names,
                              [[sc.name] + [fmt(t.ratio(sc, s, "metric"), 2)
                                            for s in srv_names] for sc in tp]))
        L.append("## Latency (us)\n")
        L.append("Ping-pong: per message; conn32: from socket() to the verified echo. "
                 "p50 / p99 / p99.9 / max, medians over rounds.\n")
        rows = []
        for sc in tp:
            if sc.mode == "stream":
                continue
            rows.append([sc.name] + [" / ".join(t.cell(sc, s, k) for k in
                                                ("lat_p50", "lat_p99", "lat_p999", "lat_max"))
                                     for s in srv_names])
        L.append(md_table(["scenario"] + srv_names, rows))
        L.append("## Server cost per unit of work\n")
        if perf_note:
            L.append(f"Not measured: {perf_note}.\n")
        else:
            L.append("Syscalls per unit:\n")
            L.append(md_table(["scenario", "per"] + srv_names,
                              [[sc.name, sc.unit] +
                               [t.cell(sc, s, "syscalls_per_unit", spread=True)
                                for s in srv_names] for sc in tp]))
            L.append("Server CPU time per unit (us):\n")
            L.append(md_table(["scenario", "per"] + srv_names,
                              [[sc.name, sc.unit] +
                               [t.cell(sc, s, "us_per_unit", spread=True)
                                for s in srv_names] for sc in tp]))
            if len(srv_names) > 1:
                L.append(f"Server CPU per unit, ratio to {t.baseline} (<1 = cheaper):\n")
                L.append(md_table(["scenario"] + srv_names,
                                  [[sc.name] + [fmt(t.ratio(sc, s, "us_per_unit"), 2)
                                                for s in srv_names] for sc in tp]))
        L.append("CPU cores used during the measured time, server / echod-bench "
                 "(a load generator near 1.0 means the run was client-bound):\n")
        L.append(md_table(["scenario"] + srv_names,
                          [[sc.name] + [t.cell(sc, s, "server_cores", 2) + " / " +
                                        t.cell(sc, s, "client_cpu", 2) for s in srv_names]
                           for sc in tp]))
        L.append("CPU time per unit (us), server / echod-bench (the load generator "
                 "should cost no more than the server):\n")
        L.append(md_table(["scenario", "per"] + srv_names,
                          [[sc.name, sc.unit] + [t.cell(sc, s, "us_per_unit") + " / " +
                                                 t.cell(sc, s, "client_us_per_unit")
                                                 for s in srv_names] for sc in tp]))
    for sc in [sc for sc in scens if sc.mode == "mixed"]:
        L.append("## Fairness\n")
        L.append(f"{sc.name}: {sc.title}. The ping-pong's latency with the streams' "
                 "rate in the same run (medians over rounds, min-max):\n")
        cols = [s for s in srv_names if any(r["scenario"] == sc.name and r["server"] == s
                                            for r in t.runs)]
        L.append(md_table([sc.name] + cols, fairness_rows(t, sc, cols)))
    if idle:
        L.append("## Idle connections\n")
        rows = []
        for sc in idle:
            for key, label, nd in (("rss_per_conn", "server RSS per connection (bytes)", 0),
                                   ("fds_per_conn", "server fds per connection", 3),
                                   ("opened", "connections held", 0),
                                   ("conns_per_s", "opening rate (conn/s)", 0),
                                   ("lat_p50", "open + first echo p50 (us)", None),
                                   ("lat_p99", "open + first echo p99 (us)", None)):
                rows.append([sc.name, label] + [t.cell(sc, s, key, nd, spread=key ==
                                                       "rss_per_conn") for s in srv_names])
        L.append(md_table(["scenario", ""] + srv_names, rows))
    L.append("## Errors\n")
    L.append("Mismatched bytes, stalled connections, connection errors and connections "
             "not opened, summed over all rounds, as counted by echod-bench; failed runs "
             "in brackets.\n")
    rows = []
    for sc in scens:
        row = [sc.name]
        for s in srv_names:
            rs = [r for r in t.runs if r["scenario"] == sc.name and r["server"] == s]
            e = sum(run_errors(r) for r in rs)
            f = sum(1 for r in rs if not r["ok"])
            row.append(f"{e}" + (f" [{f} failed]" if f else ""))
        rows.append(row)
    L.append(md_table(["scenario"] + srv_names, rows))
    failures = [r for r in t.runs if not r["ok"]]
    for r in failures[:20]:
        L.append(f"- {r['server']} {r['scenario']} round {r['round']}: {r.get('error')}\n")
    if plots:
        L.append("\n## Plots\n")
        for name, title in plots:
            L.append(f"![{title}]({rel}/{name})\n")
    L.append(f"\nRaw data of every run: [{rel}/runs.jsonl]({rel}/runs.jsonl). "
             f"Load generator: `{os.path.basename(bench_bin)}`, see echod-bench(1).\n")
    with open(path, "w") as f:
        f.write("\n".join(L))
