"""The host side of a container run: mounts, stray descendants, the
lock on the cache, the cgroups nspawn runs in."""

import fcntl
import glob
import os
import re
import signal
import subprocess
import time

from common import log


def mounts_under(path):
    """Mount points at or below path, deepest first."""
    path = os.path.realpath(path)
    found = []
    with open('/proc/self/mountinfo') as f:
        for line in f:
            mp = line.split()[4].encode().decode('unicode_escape')
            if mp == path or mp.startswith(path + '/'):
                found.append(mp)
    return sorted(found, key=len, reverse=True)


def remove_tree(path):
    """Unmount whatever is mounted below path, then delete it."""
    if not os.path.lexists(path):
        return
    for mp in mounts_under(path):
        subprocess.run(['umount', '-l', mp], stderr=subprocess.DEVNULL)
    subprocess.run(['rm', '-rf', '--one-file-system', path])


def set_child_subreaper(on):
    """Orphaned descendants become our children (so they can be found)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(36, 1 if on else 0, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def descendants(root):
    children = {}
    for st in glob.glob('/proc/[0-9]*/stat'):
        try:
            with open(st) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(st.split('/')[2]))
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kill_descendants():
    """SIGKILL every process below this one and reap them."""
    for _ in range(100):
        pids = descendants(os.getpid())
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break
        if not pids:
            return
        time.sleep(0.1)


def try_lock(f):
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def cgroup_hierarchies():
    """(mount point, our path) for the named systemd and the unified hierarchy."""
    mounts = {}
    with open('/proc/self/mountinfo') as f:
        for line in f:
            fields = line.split()
            sep = fields.index('-')
            fstype, opts = fields[sep + 1], fields[sep + 3]
            mp = fields[4]
            if fstype == 'cgroup2':
                mounts.setdefault('', mp)
            elif fstype == 'cgroup' and 'name=systemd' in opts.split(','):
                mounts.setdefault('name=systemd', mp)
    result = []
    with open('/proc/self/cgroup') as f:
        for line in f:
            _, controllers, path = line.rstrip('\n').split(':', 2)
            if controllers in mounts:
                result.append((mounts[controllers], path))
    return result


def kill_cgroup(path):
    """Kill every process in the cgroup tree at path, then remove it."""
    if not os.path.isdir(path):
        return
    if os.path.exists(os.path.join(path, 'cgroup.kill')):
        try:
            with open(os.path.join(path, 'cgroup.kill'), 'w') as f:
                f.write('1')
        except OSError:
            pass
    deadline = time.monotonic() + 15
    while True:
        pids = set()
        for dirpath, _, files in os.walk(path):
            try:
                with open(os.path.join(dirpath, 'cgroup.procs')) as f:
                    pids.update(int(x) for x in f.read().split())
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        dirs = [d for d, _, _ in os.walk(path)]
        for d in sorted(dirs, key=len, reverse=True):
            try:
                os.rmdir(d)
            except OSError:
                pass
        if not os.path.isdir(path) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def sweep_stale_cgroups(hierarchies):
    """Remove cgroups left by an earlier run that was killed."""
    for mount, path in hierarchies:
        for d in glob.glob(os.path.join(mount + path, 'echod-e2e-*')):
            m = re.search(r'echod-e2e-(\d+)$', d)
            if m and not os.path.exists('/proc/%s' % m.group(1)):
                log('# removing stale cgroup %s' % d)
                kill_cgroup(d)
