#!/usr/bin/env python3
"""End-to-end test of the Debian package, under a real systemd in a
systemd-nspawn container (the container machinery of e2e.py).

The built .deb is installed with dpkg inside the container (which has no
network: the package's dependencies are in the base tree), then driven the
way an administrator does: the socket is not started on installation,
'systemctl start echod.socket', an echo, an edit of /etc/echod.conf and
'systemctl reload echod', a broken edit that makes the reload fail,
'systemctl stop', and at last 'apt-get purge echod' with the socket and a
template instance running: nothing of the package may be left behind, not
a running unit, not a file.

Environment: as e2e.py, and
  ECHOD_DEB   the echod_*.deb to test (tools/dev.sh deb builds it);
              unset: SKIP

Exit status: 0 all checks passed, 1 a check failed, 77 cannot run here.
"""

import sys

import checks_package
from package_container import PackageContainer
from session import run_checks

# Each check builds on the one before: the run stops at the first failure.
CHECKS = [
    ('package-install', checks_package.install),
    ('package-socket-start', checks_package.socket_start),
    ('package-echo', checks_package.echo),
    ('package-reload', checks_package.reload_applies),
    ('package-reload-broken', checks_package.reload_broken),
    ('package-stop', checks_package.stop),
    ('package-purge', checks_package.purge),
]


if __name__ == '__main__':
    sys.exit(run_checks(PackageContainer(), CHECKS, stop_at_failure=True))
