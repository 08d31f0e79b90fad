"""The integration suite's face of the test library (tests/lib): start the
real binary on loopback, talk to it, watch its log, measure it, and always
kill it at the end.

A test file declares its cases with @harness.case and ends with
`harness.main()`; `python3 FILE CASE` runs one case (that is what meson
does, one test per case), `python3 FILE` runs them all, `python3 FILE
--list` lists them for meson.build.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from lib.check import *  # noqa: E402,F401,F403
from lib.check import show as _show  # noqa: E402,F401
from lib.client import *  # noqa: E402,F401,F403
from lib.daemon import *  # noqa: E402,F401,F403
from lib.kernel import *  # noqa: E402,F401,F403
from lib.runner import SKIP, case, in_private_netns, main  # noqa: E402,F401
