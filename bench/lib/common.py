"""Names and messages every part of bench/run shares."""

import os
import re
import sys


HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # bench/
REPO = os.path.dirname(HERE)
NETNS_ENV = "ECHOD_BENCH_IN_NETNS"
PROG = "bench/run"


def die(msg, status=1):
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(status)


def log(msg):
    print(msg, flush=True)


def read_first(path, pattern, default="?"):
    try:
        with open(path) as f:
            for line in f:
                m = re.match(pattern, line)
                if m:
                    return m.group(1).strip()
    except OSError:
        pass
    return default


def fmt(x, nd=None):
    if x is None:
        return "-"
    if nd is None:
        a = abs(x)
        nd = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 0.1 else 3
    return f"{x:,.{nd}f}"
