"""The systemd suite's face of the test library (tests/lib): start echod
the way a service manager does (passed sockets, NOTIFY_SOCKET,
WATCHDOG_USEC, JOURNAL_STREAM), watch its log and its notifications, talk
to it over loopback.

A test file declares its cases with @sdtest.case and ends with
`sdtest.run_cases()`; meson runs `python3 FILE CASE [ARG]...`.
Exit status: 0 pass, 1 fail, 77 skip (meson's convention).
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from lib.check import *  # noqa: E402,F401,F403
from lib.client import *  # noqa: E402,F401,F403
from lib.kernel import *  # noqa: E402,F401,F403
from lib.notify import *  # noqa: E402,F401,F403
from lib.runner import SKIP, case, main  # noqa: E402,F401
from lib.service import *  # noqa: E402,F401,F403


def run_cases(cases=None):
    """Runs the case meson names, with no limit of the runner's own."""
    main(cases, timeout=None)
