"""The case registry and the runner: a test file declares its cases with
@case and ends with main().

  python3 FILE --list          one line per case: NAME TIMEOUT alone|parallel
                               (what meson.build makes its tests from)
  python3 FILE CASE [ARG]...   runs one case, with the arguments meson gives it
  python3 FILE [CASE]...       runs those cases, or every case

Exit status: 0 pass, 1 fail, 77 skip (meson's convention).
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import traceback

from lib.check import Failure, Skip, check
from lib.daemon import dump_logs, kill_all, started

SKIP = 77

# module name -> {case name -> function}, in the order of the file: a
# test file may import another's helpers without taking its cases.
REGISTRY = {}


def case(name=None, *, timeout=60, alone=False):
    """Declares a case. name defaults to the function's name (without a
    leading 'case_'); timeout is meson's, in seconds; alone keeps other
    tests from running beside it (it needs the CPUs, many fds, or measures
    the daemon's CPU time and memory)."""
    def register(fn):
        n = name or fn.__name__
        if not name and n.startswith("case_"):
            n = n[len("case_"):]
        cases = REGISTRY.setdefault(fn.__module__, {})
        if n in cases:
            raise ValueError("case %r is declared twice" % n)
        fn.case_name, fn.timeout, fn.alone = n, timeout, alone
        cases[n] = fn
        return fn
    return register


def list_cases(cases):
    for n, fn in cases.items():
        print("%s %d %s" % (n, fn.timeout, "alone" if fn.alone else "parallel"))


def main(cases=None, timeout=300):
    """Runs the cases the command line names (see the module's doc).
    cases: the cases the running file declared (default), or a dict
    name -> function; timeout: the runner's own limit per case in
    seconds (None: only meson's)."""
    declared = REGISTRY.get("__main__", {})
    cases = declared if cases is None else cases
    for n, fn in cases.items():
        if not hasattr(fn, "timeout"):  # from a dict, not declared with @case
            case(n)(fn)
    argv = sys.argv[1:]
    if argv == ["--list"]:
        list_cases(cases)
        sys.exit(0)
    if argv and all(a in cases for a in argv):
        runs = [(n, ()) for n in argv]
    elif argv and argv[0] in cases:
        runs = [(argv[0], tuple(argv[1:]))]
    elif argv:
        print("unknown case %r; cases: %s" % (argv[0], ", ".join(cases)))
        sys.exit(2)
    else:
        runs = [(n, ()) for n in cases]

    def on_alarm(signum, frame):
        raise Failure("the case did not finish within %ss (runner limit)" % timeout)

    def on_term(signum, frame):
        kill_all()
        sys.exit(1)

    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    status = 0
    for n, args in runs:
        status = max(status, run_one(n, cases[n], args, timeout, len(runs) == 1))
    sys.exit(status)


def in_private_netns(why="a private network namespace"):
    """Re-runs the current case (argv[1]) in a new network namespace with
    only loopback (up), root only; returns True inside it, False outside
    once it passed there (the caller returns), and skips or fails as it did."""
    if os.environ.get("ECHOD_TEST_NETNS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        return True
    if os.geteuid() != 0:
        raise Skip("needs root for " + why)
    if not shutil.which("unshare"):
        raise Skip("no unshare(1)")
    r = subprocess.run(["unshare", "-n", sys.executable, sys.argv[0], sys.argv[1]],
                       env=dict(os.environ, ECHOD_TEST_NETNS="1"))
    if r.returncode == SKIP:
        raise Skip("inside the namespace")
    check(r.returncode == 0, "the case inside its network namespace", "exit 0", r.returncode)
    return False


def run_one(name, fn, args, timeout, only):
    """Runs one case; returns its exit status (a skip counts as 0 among many)."""
    t0 = time.monotonic()
    if timeout:
        signal.alarm(timeout)
    status = 0
    try:
        for need in getattr(fn, "needs", ()):
            need()
        fn(*args)
    except Skip as e:
        print("SKIP %s: %s" % (name, e))
        status = SKIP if only else 0
    except Failure as e:
        status = 1
        print("FAIL %s: %s" % (name, e))
        dump_logs()
    except Exception:
        status = 1
        print("FAIL %s: unexpected error" % name)
        traceback.print_exc(file=sys.stdout)
        dump_logs()
    else:
        print("PASS %s (%.1fs)" % (name, time.monotonic() - t0))
    finally:
        signal.alarm(0)
        kill_all()
        started.clear()
        sys.stdout.flush()
    return status
