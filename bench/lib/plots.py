"""The gnuplot PNG plots of the report."""

import json
import os
import shutil
import statistics
import subprocess
import tempfile

from .common import PROG, log


def gp_quote(s):
    return "'" + s.replace("'", "''") + "'"


COLORS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377",
          "#bbbbbb", "#000000"]


def gnuplot(lines, tmp, png):
    """run one gnuplot script; True if it made the PNG"""
    script = os.path.join(tmp, os.path.basename(png) + ".gp")
    head = ["set terminal pngcairo noenhanced size 1100,420 font 'sans,10'",
            f"set output {gp_quote(png)}", "set style fill solid 0.7 border -1",
            "set grid ytics"]
    head += [f"set linetype {i + 1} lc rgb '{c}' lw 2 pt {i + 1}"
             for i, c in enumerate(COLORS)]
    with open(script, "w") as f:
        f.write("\n".join(head + lines) + "\n")
    r = subprocess.run(["gnuplot", script], capture_output=True, text=True)
    if r.returncode != 0:
        log(f"{PROG}: gnuplot failed for {os.path.basename(png)}: "
            f"{r.stderr.strip()[-300:]}")
        try:
            os.unlink(png)
        except OSError:
            pass
        return False
    return os.path.exists(png)


def bars(datafile, ylabel, nservers):
    """boxes of column 3 per server, min-max error bars from columns 4 and 5"""
    return ["unset logscale", "set yrange [0:*]", "unset key", "set boxwidth 0.6",
            f"set xrange [-0.6:{nservers - 0.4}]", f"set ylabel {gp_quote(ylabel)}",
            f"plot {gp_quote(datafile)} using 1:3:(0.6):($1+1):xtic(2) with boxes "
            "lc variable, '' using 1:3:4:5 with yerrorbars lc rgb 'black' pt 7 ps 0.3"]


def write_spread(path, t, sc, srv, key):
    """Writes 'index "server" median min max' for each server with values
    of key in scenario sc; returns whether any server had one."""
    n = 0
    with open(path, "w") as f:
        for i, s in enumerate(srv):
            xs = [x for x in t.vals(sc, s, key) if x is not None]
            if xs:
                f.write(f"{i} {json.dumps(s)} {statistics.median(xs)} {min(xs)} {max(xs)}\n")
                n += 1
    return n > 0


def make_plots(data_dir, t, scens, srv):
    """One PNG per scenario: throughput (idle: RSS per connection) and the
    latency percentiles (stream: server CPU per MB); plus the throughput
    ratios to the baseline. Returns [(file, title)]."""
    if shutil.which("gnuplot") is None:
        log(f"{PROG}: gnuplot is not installed: no plots")
        return []
    out = []
    tmp = tempfile.mkdtemp(prefix="echod-plot-")
    tps = [sc for sc in scens if sc.mode != "idle"]
    if len(srv) > 1 and tps:
        rat = os.path.join(tmp, "ratios")
        with open(rat, "w") as f:
            f.write("scenario " + " ".join(json.dumps(s) for s in srv) + "\n")
            for sc in tps:
                vals = [t.ratio(sc, s, "metric") for s in srv]
                f.write(sc.name + " " + " ".join(f"{v:.4f}" if v else "NaN"
                                                 for v in vals) + "\n")
        title = f"throughput relative to {t.baseline} (median of per-round ratios)"
        png = os.path.join(data_dir, "ratios.png")
        if gnuplot([f"set title {gp_quote(title)}", "set yrange [0:*]",
                    "set ylabel 'ratio (>1 = faster)'", "set style data histograms",
                    "set style histogram clustered gap 1", "set boxwidth 0.9",
                    "set key top right",
                    "plot " + ", ".join(f"{gp_quote(rat)} using {i + 2}:xtic(1) lc {i + 1} "
                                        f"title columnheader({i + 2})"
                                        for i in range(len(srv)))], tmp, png):
            out.append(("ratios.png", title))
    for sc in scens:
        thr = os.path.join(tmp, f"{sc.name}.thr")
        if not write_spread(thr, t, sc, srv, "metric"):
            continue
        title = f"{sc.name}: {sc.title}"
        lines = [f"set multiplot layout 1,2 title {gp_quote(title)}"]
        lines += bars(thr, sc.metric_unit + " (median, min-max)", len(srv))
        lat = os.path.join(tmp, f"{sc.name}.lat")
        have_lat = False
        with open(lat, "w") as f:
            f.write("pct " + " ".join(json.dumps(s) for s in srv) + "\n")
            for k, label in (("lat_p50", "p50"), ("lat_p90", "p90"), ("lat_p99", "p99"),
                             ("lat_p999", "p99.9"), ("lat_max", "max")):
                vals = [t.median(sc, s, k) for s in srv]
                have_lat = have_lat or any(vals)
                f.write(label + " " + " ".join(f"{v:.3f}" if v else "NaN"
                                               for v in vals) + "\n")
        if have_lat:
            ylabel = {"idle": "open + first echo (us)", "connect": "connect + echo (us)"
                      }.get(sc.mode, "latency per message (us)")
            lines += ["set xrange [*:*]", "set yrange [*:*]", "set logscale y",
                      "set key top left", f"set ylabel {gp_quote(ylabel + ', median')}",
                      "plot " + ", ".join(f"{gp_quote(lat)} using 0:{i + 2}:xtic(1) with "
                                          f"linespoints lc {i + 1} title columnheader({i + 2})"
                                          for i in range(len(srv)))]
        else:
            cost = os.path.join(tmp, f"{sc.name}.cost")
            if write_spread(cost, t, sc, srv, "us_per_unit"):
                lines += bars(cost, f"server CPU us per {sc.unit} (median, min-max)",
                              len(srv))
        lines.append("unset multiplot")
        name = f"{sc.name}.png"
        if gnuplot(lines, tmp, os.path.join(data_dir, name)):
            out.append((name, title))
    shutil.rmtree(tmp, ignore_errors=True)
    return out
