"""The machine: a private network namespace, the fd limit, the binaries,
perf, and the description that heads the report."""

import os
import platform
import resource
import shutil
import subprocess
import sys

from .common import NETNS_ENV, PROG, REPO, die, read_first


def enter_netns(script):
    """Re-run script (bench/run) in a private, loopback-only network namespace."""
    if os.environ.get(NETNS_ENV) == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        links = subprocess.run(["ip", "-o", "link", "show"], check=True,
                               capture_output=True, text=True).stdout
        names = [ln.split(":")[1].strip() for ln in links.splitlines() if ":" in ln]
        if names != ["lo"]:
            die(f"refusing to run: the network namespace has interfaces {names}")
        return
    if shutil.which("unshare") is None:
        print(f"{PROG}: unshare(1) is missing; cannot isolate the network")
        sys.exit(77)
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"{PROG}: cannot create a private network namespace "
              f"(unshare -n: {probe.stderr.strip() or 'failed'}); run as root")
        sys.exit(77)
    env = dict(os.environ, **{NETNS_ENV: "1"})
    sys.stdout.flush()
    os.execvpe("unshare", ["unshare", "-n", sys.executable, script] + sys.argv[1:], env)


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def find_binary(opt, env, rel, name):
    for cand in (opt, os.environ.get(env), os.path.join(REPO, rel)):
        if cand and os.path.isfile(cand) and os.access(cand, os.X_OK):
            return os.path.abspath(cand)
    found = shutil.which(name)
    if found:
        return found
    die(f"cannot find {name}: build it (meson compile -C build), or give "
        f"its path with --{name.replace('echod-', '')} or ${env}", 2)


def perf_usable():
    if shutil.which("perf") is None:
        return "perf is not installed (Debian package linux-perf)"
    r = subprocess.run(["perf", "stat", "-x,", "-e", "raw_syscalls:sys_enter,task-clock",
                        "-D", "-1", "--control", "fd:0", "--", "true"],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0 or "raw_syscalls" not in r.stderr:
        return "perf stat cannot count raw_syscalls with --control here: " + \
            (r.stderr.strip().splitlines() or ["?"])[-1]
    return None


def machine_info(hard_nofile, cpus):
    def cmd(args):
        try:
            return subprocess.run(args, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    mem = read_first("/proc/meminfo", r"MemTotal:\s+(\d+)", "0")
    return {
        "cpu": read_first("/proc/cpuinfo", r"model name\s*:\s*(.*)"),
        "cores": os.cpu_count(),
        "pinning": f"server on CPU {cpus[0]}, echod-bench on CPU {cpus[1]}"
                   if len(cpus) > 1 else "none (only one CPU available)",
        "memory": f"{int(mem) / 1048576:.1f} GiB",
        "kernel": platform.release(),
        "os": read_first("/etc/os-release", r'PRETTY_NAME="?([^"]*)"?'),
        "nofile": hard_nofile,
        "commit": cmd(["git", "-C", REPO, "describe", "--always", "--dirty"]) or "?",
        "perf": cmd(["perf", "--version"]) or "-",
    }
