"""One run of a container: preconditions, set-up and boot, the checks in
their order, the journal when something failed, tear-down and the summary.
Exit status: 0 all checks passed, 1 a check failed, 77 cannot run here."""

import os
import signal
import time

from common import SKIP, Failure, Interrupted, Skip, log, on_signal


def run_checks(box, checks, stop_at_failure=False):
    """Runs checks, a list of (name, function of the Container), on box.
    With stop_at_failure, each builds on the one before: a failure ends
    the run."""
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    t0 = time.monotonic()
    failed = interrupted = False
    try:
        box.preflight()
        box.setup()
        box.boot()
        for name, fn in checks:
            if not box.check(name, lambda: fn(box)) and stop_at_failure:
                break
        failed = not all(ok for _, ok in box.results)
    except Skip as e:
        log('SKIP: %s' % e)
        box.cleanup()
        return SKIP
    except Failure as e:
        log('FAIL setup: %s' % e)
        failed = True
    except Interrupted as e:
        log('FAIL interrupted by %s' % e)
        failed = interrupted = True
    try:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        if failed or os.environ.get('ECHOD_E2E_JOURNAL'):
            box.dump_journal()
    finally:
        box.cleanup()
    n_ok = len([1 for _, ok in box.results if ok])
    log('# %d of %d checks passed%s in %.1f s (container tree: %s)' % (
        n_ok, len(box.results), ' before the interruption' if interrupted else '',
        time.monotonic() - t0,
        ('made in %.0f s' % box.tree_time) if box.tree_made else
        'cached' if box.tree else 'none'))
    return 1 if failed else 0
