"""What every part of the end-to-end test shares: the container's
constants, logging, running a host command with a deadline."""

import os
import re
import select
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from lib.check import Failure, Skip  # noqa: E402,F401
from lib.runner import SKIP  # noqa: E402,F401

SUITE = 'bookworm'
VARIANT = 'minbase'
# procps: ps and pgrep for looking at the service from inside.
PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'netcat-openbsd', 'iproute2',
            'procps']
CONTAINER_PATH = '/usr/sbin:/usr/bin:/sbin:/bin'
PORT = 7
WATCHDOG_SEC = 2
STATUS_RE = re.compile(r'^(\d+) connections?, (\d+) served, (\d+) bytes echoed$')
CONF_PATH = '/etc/echod.conf'
UNIT_DIRS = ('/usr/lib/systemd/system', '/lib/systemd/system')


class Interrupted(BaseException):
    pass


def log(msg):
    print(msg, flush=True)


def on_signal(signum, frame):
    raise Interrupted(signal.Signals(signum).name)


def run(cmd, timeout=60, check=True, **kw):
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.STDOUT)
    try:
        p = subprocess.run(cmd, timeout=timeout, **kw)
    except subprocess.TimeoutExpired as e:
        raise Failure('%s: no result within %d s' % (' '.join(cmd), timeout)) from e
    if check and p.returncode != 0:
        out = p.stdout.decode(errors='replace') if isinstance(p.stdout, bytes) else (p.stdout or '')
        raise Failure('%s: exit %d\n%s' % (' '.join(cmd), p.returncode, out))
    return p


def text(b):
    return b.decode('utf-8', errors='replace') if isinstance(b, bytes) else b


def wait_until(pred, timeout, interval=0.2):
    """Poll pred() until it returns a true value or timeout seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def read_with_timeout(pipe, n, timeout):
    """Read up to n bytes from pipe, waiting at most timeout seconds."""
    fd = pipe.fileno()
    buf = b''
    deadline = time.monotonic() + timeout
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure('no answer within %d s (got %r)' % (timeout, buf))
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, n - len(buf))
            if not chunk:
                break
            buf += chunk
    return buf
