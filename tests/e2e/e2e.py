#!/usr/bin/env python3
"""End-to-end test of echod under a real systemd, booted with systemd-nspawn.

The container is a minimal Debian tree made once by debootstrap and cached
outside the source tree; each run boots it with --volatile=overlay, so the
cached tree never changes. The files 'meson install' (prefix /usr,
sysconfdir /etc) would install are bound into it read-only at their
installed paths, together with a test /etc/echod.conf. The checks then drive
echod the way an operator does: systemctl, nc and journalctl, run inside
the container through nsenter.

Environment:
  ECHOD_BUILD_ROOT   meson build directory (set by the meson test)
  ECHOD_SOURCE_ROOT  source directory (set by the meson test)
  ECHOD              the daemon built in ECHOD_BUILD_ROOT (informational)
  ECHOD_E2E_CACHE    where the container tree is cached
                     (default: BUILD_ROOT/tests/e2e/cache)
  ECHOD_E2E_MIRROR   Debian mirror for debootstrap
                     (default: the first bookworm 'main' source in apt's
                     configuration)
  ECHOD_E2E_KEEP     if set, keep the run directory (staging tree, logs)
  ECHOD_E2E_JOURNAL  if set, print the container journal even when all passed

Exit status: 0 all checks passed, 1 a check failed, 77 cannot run here.
"""

# The parts: common.py (constants, logging, host commands), host.py
# (mounts, stray processes, cgroups), tree.py (the debootstrap cache),
# stage.py ('meson install' staging), container.py (boot, nsenter, journal,
# tear-down), session.py (one run: the checks in order, the summary),
# checks_*.py (the checks, each a function of the Container). package.py
# is the same run for the Debian package.

import sys

import checks_service
import checks_system
from container import Container
from session import run_checks

# In this order: each check leaves the service as the next one expects.
CHECKS = [
    ('socket-start', checks_service.socket_start),
    ('echo-line', checks_service.echo_line),
    ('echo-binary', checks_service.echo_binary),
    ('status-text', checks_service.status),
    ('stats-signal', checks_service.stats_signal),
    ('reload-applies', checks_service.reload_upper),
    ('reload-broken-config', checks_service.reload_broken),
    ('stop-drains', checks_service.stop),
    ('journal-priorities', checks_system.journal),
    ('sandbox-in-force', checks_system.sandbox),
    ('watchdog-restart', checks_system.watchdog),
]


if __name__ == '__main__':
    sys.exit(run_checks(Container(), CHECKS))
