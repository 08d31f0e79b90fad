"""One container: preconditions, the staged files, the nspawn boot, running
commands inside it (nsenter), its journal, recording results, tear-down."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from common import (CONF_PATH, CONTAINER_PATH, PORT, SUITE, UNIT_DIRS, Failure, Skip, log,
                    text, wait_until)
from host import cgroup_hierarchies, kill_cgroup, mounts_under, remove_tree, sweep_stale_cgroups
from stage import nspawn_escape, stage, staged_files
from tree import ensure_tree, find_mirror


class Container:
    def __init__(self):
        self.build_root = os.environ.get('ECHOD_BUILD_ROOT')
        self.source_root = os.environ.get('ECHOD_SOURCE_ROOT') or \
            os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.name = 'echod-e2e-%d' % os.getpid()
        self.workdir = None
        self.cgroups = []
        self.nspawn = None
        self.leader = None
        self.clients = []
        self.bytes_sent = 0  # by the echo checks, for the status check
        self.results = []
        # Directories nspawn makes on the host for its own bookkeeping.
        self.host_dirs = [d for d in ('/run/systemd/nspawn/propagate',
                                      '/run/systemd/nspawn/locks',
                                      '/run/systemd/nspawn', '/run/systemd')
                          if not os.path.isdir(d)]
        self.tree = None
        self.tree_time = 0
        self.tree_made = False
        self.console = None

    # -- preconditions -----------------------------------------------------

    def preflight(self):
        if os.environ.get('ECHOD_E2E_SKIP'):
            raise Skip(os.environ['ECHOD_E2E_SKIP'])
        if not sys.platform.startswith('linux'):
            raise Skip('needs Linux')
        if os.geteuid() != 0:
            raise Skip('needs root (systemd-nspawn)')
        for tool in ('systemd-nspawn', 'nsenter', 'meson'):
            if not shutil.which(tool):
                raise Skip('%s is not installed' % tool)
        if not self.build_root or not os.path.isdir(self.build_root):
            raise Skip('ECHOD_BUILD_ROOT is not a build directory (run through meson test)')
        self.hierarchies = cgroup_hierarchies()
        if not self.hierarchies:
            raise Skip('no cgroup hierarchy for systemd found')
        self.cache = os.environ.get('ECHOD_E2E_CACHE') or \
            os.path.join(self.build_root, 'tests', 'e2e', 'cache')
        cached = os.path.isdir(self.cache) and any(
            os.path.isdir(p) for p in glob.glob(os.path.join(self.cache, SUITE + '-*')))
        if not cached:
            if not shutil.which('debootstrap'):
                raise Skip('debootstrap is not installed and no container tree is cached')
            if not find_mirror()[0]:
                raise Skip('no Debian %s mirror in the apt sources (set ECHOD_E2E_MIRROR)'
                           % SUITE)

    # -- set up ------------------------------------------------------------

    def setup(self):
        t0 = time.monotonic()
        self.tree, self.tree_made = ensure_tree(self.cache)
        self.tree_time = time.monotonic() - t0
        cache = os.path.dirname(self.tree)
        for stale in glob.glob(os.path.join(cache, 'run.*.*')):
            # Left by a run that was killed: its pid is in the name.
            if not os.path.exists('/proc/%s' % stale.split('.')[-2]):
                remove_tree(stale)
        self.workdir = tempfile.mkdtemp(prefix='run.%d.' % os.getpid(), dir=cache)
        os.chmod(self.workdir, 0o755)
        self.installed_from, staging = stage(self.build_root, self.source_root, self.workdir)
        files = staged_files(staging)
        if '/usr/sbin/echod' not in files:
            raise Failure('meson install did not install /usr/sbin/echod: %s' % sorted(files))
        self.units = {}
        for unit in ('echod.socket', 'echod.service'):
            for d in UNIT_DIRS:
                if d + '/' + unit in files:
                    self.units[unit] = d + '/' + unit
            if unit not in self.units:
                raise Failure('meson install did not install %s into %s: %s'
                              % (unit, ' or '.join(UNIT_DIRS), sorted(files)))
        self.staged = files
        self.conf = os.path.join(self.workdir, 'echod.conf')
        self.write_conf('# echod end-to-end test\ntransform = none\nlog_level = info\n')
        log('# installed: %s' % ', '.join(sorted(files)))

    def write_conf(self, content):
        # Rewrite in place: the file is bound into the container by inode.
        with open(self.conf, 'w') as f:
            f.write(content)
        os.chmod(self.conf, 0o644)

    def binds(self):
        """nspawn options that put what is tested into the container: the
        installed files read-only, the test configuration writable."""
        args = []
        for dest, src in sorted(self.staged.items()):
            if dest == CONF_PATH:
                continue
            args.append('--bind-ro=%s:%s' % (nspawn_escape(src), nspawn_escape(dest)))
        args.append('--bind=%s:%s' % (nspawn_escape(self.conf), CONF_PATH))
        return args

    def boot(self):
        for mount, path in self.hierarchies:
            d = os.path.join(mount + path, self.name)
            os.mkdir(d)
            self.cgroups.append(d)
        sweep_stale_cgroups(self.hierarchies)
        cmd = ['systemd-nspawn', '--quiet', '--directory=' + self.tree,
               '--machine=' + self.name, '--boot', '--register=no', '--keep-unit',
               '--private-network', '--volatile=overlay', '--console=read-only']
        cmd += self.binds()
        cgroups = list(self.cgroups)

        def enter_cgroup():
            # nspawn --keep-unit makes payload/ and supervisor/ beside its
            # own cgroup: give it one of its own.
            for d in cgroups:
                with open(os.path.join(d, 'cgroup.procs'), 'w') as f:
                    f.write(str(os.getpid()))

        self.console = os.path.join(self.workdir, 'console.log')
        log('# booting: %s' % ' '.join(cmd[:10]))
        t0 = time.monotonic()
        with open(self.console, 'wb') as out:
            self.nspawn = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                           stderr=subprocess.STDOUT, preexec_fn=enter_cgroup)

        def leader():
            if self.nspawn.poll() is not None:
                raise Failure('systemd-nspawn exited with %d:\n%s'
                              % (self.nspawn.returncode, self.console_text()))
            try:
                with open('/proc/%d/task/%d/children' % (self.nspawn.pid, self.nspawn.pid)) as f:
                    children = f.read().split()
            except OSError:
                return None
            for c in children:
                try:
                    with open('/proc/%s/status' % c) as f:
                        ns = [line for line in f if line.startswith('NSpid:')]
                except OSError:
                    continue
                if ns and ns[0].split()[-1] == '1' and len(ns[0].split()) > 2:
                    return int(c)
            return None

        self.leader = wait_until(leader, 60)
        if not self.leader:
            raise Failure('the container did not start within 60 s')

        state = {}

        def running():
            p = self.cexec('systemctl', 'is-system-running', check=False, timeout=30)
            state['s'] = text(p.stdout).strip()
            return state['s'] in ('running', 'degraded')

        if not wait_until(running, 120, 0.5):
            raise Failure('the container did not finish booting within 120 s (state %r)'
                          % state.get('s'))
        self.boot_time = time.monotonic() - t0
        detail = 'state %s, %.1f s' % (state['s'], self.boot_time)
        if state['s'] == 'degraded':
            failed = self.cexec('systemctl', '--failed', '--no-legend', check=False)
            detail += '; failed units: ' + text(failed.stdout).strip().replace('\n', '; ')
        self.record('container-boot', True, detail)

    def console_text(self):
        if not self.console:
            return ''
        try:
            return open(self.console, errors='replace').read()[-5000:]
        except OSError:
            return ''

    # -- running things in the container -----------------------------------

    def nsenter(self, args, timeout):
        # timeout(1) inside as well: killing nsenter would not end its child.
        return ['nsenter', '-t', str(self.leader), '-a', 'env', '-i',
                'PATH=' + CONTAINER_PATH, 'LANG=C.UTF-8', 'SYSTEMD_COLORS=0',
                'SYSTEMD_PAGER=', 'timeout', '-k', '5', str(int(timeout))] + list(args)

    def cexec(self, *args, input=None, timeout=60, check=True, stderr=subprocess.PIPE):
        cmd = self.nsenter(args, timeout)
        try:
            p = subprocess.run(cmd, input=input, stdout=subprocess.PIPE, stderr=stderr,
                               timeout=timeout + 15)
        except subprocess.TimeoutExpired as e:
            raise Failure('%s: no result within %d s' % (' '.join(args), timeout)) from e
        if check and p.returncode != 0:
            raise Failure('%s: exit %d: %s %s' % (' '.join(args), p.returncode,
                                                  text(p.stdout).strip(), text(p.stderr).strip()))
        return p

    def show(self, unit, *props):
        p = self.cexec('systemctl', 'show', '-p', ','.join(props), unit)
        values = {}
        for line in text(p.stdout).splitlines():
            if '=' in line:
                k, v = line.split('=', 1)
                values[k] = v
        return values

    def echo(self, data, timeout=60):
        """Send data to port 7 in the container; return what came back."""
        p = self.cexec('nc', '-N', '-w', '10', '127.0.0.1', str(PORT), input=data,
                       timeout=timeout, check=False)
        if p.returncode != 0:
            raise Failure('nc exited %d: %s' % (p.returncode, text(p.stderr).strip()))
        return p.stdout

    def journal(self):
        """(priority, message) of every line echod wrote to the journal."""
        p = self.cexec('journalctl', '-u', 'echod.service', '-o', 'json', '--no-pager')
        entries = []
        for line in text(p.stdout).splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get('_TRANSPORT') != 'stdout':
                continue
            msg = e.get('MESSAGE', '')
            if isinstance(msg, list):
                msg = bytes(msg).decode('utf-8', errors='replace')
            entries.append((int(e.get('PRIORITY', -1)), msg))
        return entries

    def wait_journal(self, pattern, count=1, timeout=15):
        """Wait until at least count lines of echod match pattern."""
        rx = re.compile(pattern)
        return wait_until(lambda: len([m for _, m in self.journal() if rx.search(m)]) >= count,
                          timeout, 0.3)

    def count_journal(self, pattern):
        rx = re.compile(pattern)
        return len([m for _, m in self.journal() if rx.search(m)])

    def systemd_journal(self, pattern):
        """Lines about echod.service that systemd itself logged."""
        p = self.cexec('journalctl', '-u', 'echod.service', '-o', 'cat', '_PID=1',
                       '--no-pager', check=False)
        return [line for line in text(p.stdout).splitlines() if re.search(pattern, line)]

    # -- checks ------------------------------------------------------------

    def record(self, name, ok, detail=''):
        self.results.append((name, ok))
        log('%s %s%s' % ('PASS' if ok else 'FAIL', name, (': ' + detail) if detail else ''))

    def check(self, name, fn):
        t0 = time.monotonic()
        try:
            detail = fn()
            ok = True
        except Failure as e:
            detail, ok = str(e), False
        self.record(name, ok, '%s (%.1f s)' % (detail or 'ok', time.monotonic() - t0))
        return ok

    # -- tear down ---------------------------------------------------------

    def dump_journal(self):
        if not self.leader:
            if self.console:
                log('# container console:\n' + self.console_text())
            return
        try:
            p = self.cexec('journalctl', '-b', '--no-pager', '-o', 'short-monotonic',
                           check=False, timeout=60, stderr=subprocess.STDOUT)
            log('# ---- container journal ----\n%s# ---- end of container journal ----'
                % text(p.stdout))
        except Failure as e:
            log('# cannot read the container journal: %s' % e)
            log('# container console:\n' + self.console_text())

    def cleanup(self):
        for c in self.clients:
            if c.poll() is None:
                c.kill()
                c.wait()
        if self.nspawn and self.nspawn.poll() is None:
            # SIGTERM makes nspawn ask the container's systemd to power off.
            self.nspawn.terminate()
            try:
                self.nspawn.wait(timeout=60)
            except subprocess.TimeoutExpired:
                log('# the container did not stop within 60 s; killing it')
                self.nspawn.kill()
                self.nspawn.wait()
        for d in self.cgroups:
            kill_cgroup(d)
            if os.path.isdir(d):
                log('# could not remove cgroup %s' % d)
        # nspawn's own bookkeeping on the host.
        shutil.rmtree('/run/systemd/nspawn/propagate/' + self.name, ignore_errors=True)
        for d in self.host_dirs:
            try:
                os.rmdir(d)  # only if empty: a concurrent run may use it
            except OSError:
                pass
        if self.workdir:
            left = mounts_under(self.workdir) + (mounts_under(self.tree) if self.tree else [])
            if left:
                log('# mounts left behind: %s' % left)
            if os.environ.get('ECHOD_E2E_KEEP'):
                log('# kept %s' % self.workdir)
            else:
                remove_tree(self.workdir)
