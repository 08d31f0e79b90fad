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

import fcntl
import glob
import hashlib
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SKIP = 77
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


class Skip(Exception):
    pass


class Failure(Exception):
    pass


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


# --------------------------------------------------------------------------
# Mounts and directories

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


# --------------------------------------------------------------------------
# The container tree

def apt_sources():
    """(uri, suites, components, signed_by) for each enabled deb source."""
    entries = []
    one_line = ['/etc/apt/sources.list'] + sorted(glob.glob('/etc/apt/sources.list.d/*.list'))
    for path in one_line:
        try:
            lines = open(path).read().splitlines()
        except OSError:
            continue
        for line in lines:
            line = line.split('#', 1)[0].strip()
            m = re.match(r'^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$', line)
            if not m:
                continue
            opts = dict(o.split('=', 1) for o in (m.group(1) or '').split() if '=' in o)
            entries.append((m.group(2), [m.group(3)], m.group(4).split(),
                            opts.get('signed-by')))
    for path in sorted(glob.glob('/etc/apt/sources.list.d/*.sources')):
        try:
            content = open(path).read()
        except OSError:
            continue
        for stanza in re.split(r'\n\s*\n', content):
            fields = {}
            key = None
            for line in stanza.splitlines():
                if line.startswith('#') or not line.strip():
                    continue
                if line[0] in ' \t' and key:
                    fields[key] += ' ' + line.strip()
                    continue
                if ':' in line:
                    key, val = line.split(':', 1)
                    key = key.strip().lower()
                    fields[key] = val.strip()
            if 'deb' not in fields.get('types', '').split():
                continue
            if fields.get('enabled', 'yes').lower() in ('no', 'false', '0'):
                continue
            for uri in fields.get('uris', '').split():
                entries.append((uri, fields.get('suites', '').split(),
                                fields.get('components', '').split(),
                                fields.get('signed-by')))
    return entries


def find_mirror():
    """The Debian mirror and keyring to debootstrap from."""
    if os.environ.get('ECHOD_E2E_MIRROR'):
        return os.environ['ECHOD_E2E_MIRROR'], None
    for uri, suites, comps, signed_by in apt_sources():
        if SUITE in suites and 'main' in comps and \
                re.match(r'^(https?|file):', uri):
            keyring = signed_by if signed_by and os.path.isfile(signed_by) else None
            return uri, keyring
    return None, None


def tree_key():
    arch = run(['dpkg', '--print-architecture']).stdout.decode().strip()
    ident = '%s %s %s %s' % (SUITE, VARIANT, arch, ','.join(PACKAGES))
    return '%s-%s-%s' % (SUITE, arch, hashlib.sha256(ident.encode()).hexdigest()[:12])


def ensure_tree(cache):
    """Return the cached container tree, making it first if needed.

    debootstrap writes into a temporary directory that is renamed only when
    it succeeded, so an interrupted run is never taken for a tree."""
    os.makedirs(cache, exist_ok=True)
    final = os.path.join(cache, tree_key())
    if os.path.isdir(final):
        return final, False
    lock = open(os.path.join(cache, '.lock'), 'w')
    log('# waiting for the cache lock' if not try_lock(lock) else '# cache lock taken')
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if os.path.isdir(final):
            return final, False
        for stale in glob.glob(os.path.join(cache, 'tmp.*')):
            log('# removing unfinished tree %s' % stale)
            remove_tree(stale)
        mirror, keyring = find_mirror()
        if not mirror:
            raise Skip('no Debian %s mirror in the apt sources (set ECHOD_E2E_MIRROR)' % SUITE)
        if not shutil.which('debootstrap'):
            raise Skip('debootstrap is not installed')
        tmp = tempfile.mkdtemp(prefix='tmp.', dir=cache)
        os.chmod(tmp, 0o755)
        cmd = ['debootstrap', '--variant=' + VARIANT, '--include=' + ','.join(PACKAGES)]
        if keyring:
            cmd.append('--keyring=' + keyring)
        cmd += [SUITE, tmp, mirror]
        log('# making the container tree (once): %s' % ' '.join(cmd))
        t0 = time.monotonic()
        logpath = tmp + '.log'
        try:
            with open(logpath, 'wb') as out:
                # debootstrap and all its children hold the lock: if this
                # script is killed, the next run waits for them to end.
                set_child_subreaper(True)
                p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, pass_fds=(lock.fileno(),))
                try:
                    rc = p.wait(timeout=600)
                except BaseException:
                    # debootstrap's children outlive a killed debootstrap.
                    kill_descendants()
                    raise
                finally:
                    set_child_subreaper(False)
            if rc != 0:
                tail = open(logpath, errors='replace').read()[-3000:]
                raise Failure('debootstrap failed (exit %d):\n%s' % (rc, tail))
            if mounts_under(tmp):
                raise Failure('debootstrap left mounts below %s' % tmp)
            os.rename(tmp, final)
        except BaseException:
            remove_tree(tmp)
            raise
        finally:
            if os.path.exists(logpath):
                os.unlink(logpath)
        log('# container tree made in %.0f s: %s' % (time.monotonic() - t0, final))
        return final, True
    finally:
        lock.close()


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


# --------------------------------------------------------------------------
# What 'meson install' installs

def meson_options(builddir):
    p = run(['meson', 'introspect', '--buildoptions', builddir], timeout=120,
            stderr=subprocess.PIPE)
    return {o['name']: o['value'] for o in json.loads(p.stdout)}


def stage(build_root, source_root, workdir):
    """'meson install' into a staging tree from a build for /usr and /etc."""
    opts = meson_options(build_root)
    if opts.get('prefix') == '/usr' and opts.get('sysconfdir') == '/etc' and \
            opts.get('systemdsystemunitdir') != 'no':
        builddir = build_root
        log('# installing from %s (prefix /usr, sysconfdir /etc)' % builddir)
        install = ['meson', 'install', '-C', builddir, '--no-rebuild']
    else:
        # A build of the same source for the paths a distribution uses.
        builddir = os.path.join(build_root, 'tests', 'e2e', 'usr-build')
        log('# %s is configured for prefix %s, sysconfdir %s, unit directory %r; '
            'using the build %s for prefix /usr'
            % (build_root, opts.get('prefix'), opts.get('sysconfdir'),
               opts.get('systemdsystemunitdir'), builddir))
        if not os.path.isfile(os.path.join(builddir, 'build.ninja')):
            run(['meson', 'setup', builddir, source_root, '--prefix=/usr',
                 '--sysconfdir=/etc', '-Dtests=false', '-Dsystemd=enabled',
                 '-Dsystemdsystemunitdir='],
                timeout=300)
        run(['meson', 'compile', '-C', builddir], timeout=600)
        install = ['meson', 'install', '-C', builddir]
    staging = os.path.join(workdir, 'staging')
    run(install + ['--destdir', staging, '--quiet'], timeout=300)
    return builddir, staging


def staged_files(staging):
    """Installed path -> staged file, for every file meson installed."""
    files = {}
    for dirpath, dirnames, filenames in os.walk(staging):
        for name in filenames + [d for d in dirnames
                                 if os.path.islink(os.path.join(dirpath, d))]:
            src = os.path.join(dirpath, name)
            files['/' + os.path.relpath(src, staging)] = src
    return files


def nspawn_escape(path):
    return path.replace('\\', '\\\\').replace(':', '\\:')


# --------------------------------------------------------------------------
# cgroups

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


# --------------------------------------------------------------------------
# The run

class E2E:
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
                        ns = [l for l in f if l.startswith('NSpid:')]
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
        return [l for l in text(p.stdout).splitlines() if re.search(pattern, l)]

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

    def c_socket_start(self):
        self.cexec('systemctl', 'start', 'echod.socket')
        s = self.show('echod.socket', 'ActiveState', 'Listen', 'FragmentPath')
        if s.get('ActiveState') != 'active':
            raise Failure('echod.socket is %s' % s.get('ActiveState'))
        if not re.search(r'(^|[\]:\s])%d \(Stream\)' % PORT, s.get('Listen', '')):
            raise Failure('echod.socket listens on %r, not port %d' % (s.get('Listen'), PORT))
        v = self.show('echod.service', 'ActiveState', 'FragmentPath')
        if v.get('ActiveState') != 'inactive':
            raise Failure('echod.service is %s before any client' % v.get('ActiveState'))
        for unit, frag in (('echod.socket', s.get('FragmentPath')),
                           ('echod.service', v.get('FragmentPath'))):
            if frag not in [d + '/' + unit for d in UNIT_DIRS]:
                raise Failure('%s was loaded from %r, not from the unit directory'
                              % (unit, frag))
            inside = self.cexec('cat', frag).stdout
            with open(self.staged[self.units[unit]], 'rb') as f:
                if f.read() != inside:
                    raise Failure('%s in the container differs from the installed one' % frag)
        exe = self.show('echod.service', 'ExecStart').get('ExecStart', '')
        if not re.search(r'\bpath=/usr/sbin/echod ', exe):
            raise Failure('echod.service runs %r, not /usr/sbin/echod' % exe)
        inside = text(self.cexec('sha256sum', '/usr/sbin/echod').stdout).split()[0]
        with open(self.staged['/usr/sbin/echod'], 'rb') as f:
            if hashlib.sha256(f.read()).hexdigest() != inside:
                raise Failure('/usr/sbin/echod in the container differs from the installed one')
        return 'socket active on %s; service inactive; units from %s run /usr/sbin/echod' % (
            s['Listen'], os.path.dirname(v['FragmentPath']))

    def c_echo_line(self):
        line = b'hello, echod\n'
        got = self.echo(line)
        if got != line:
            raise Failure('sent %r, got %r' % (line, got))
        st = self.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
        if st.get('ActiveState') != 'active':
            raise Failure('echo worked but echod.service is %s' % st.get('ActiveState'))
        self.bytes_sent = len(line)
        return 'echoed %r; echod.service activated (%s/%s, MainPID %s)' % (
            line, st['ActiveState'], st['SubState'], st['MainPID'])

    def c_echo_binary(self):
        data = bytes(range(256)) * 16 + os.urandom(1 << 20) + b'\0\r\n\xff\xfe'
        got = self.echo(data)
        want, have = hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest()
        if want != have:
            raise Failure('sent %d bytes sha256 %s, got %d bytes sha256 %s'
                          % (len(data), want[:16], len(got), have[:16]))
        self.bytes_sent += len(data)
        return '%d bytes, sha256 %s...' % (len(data), want[:16])

    def c_status(self):
        last = {}

        def good():
            st = self.show('echod.service', 'ActiveState', 'SubState', 'StatusText')
            last.update(st)
            m = STATUS_RE.match(st.get('StatusText', ''))
            return st.get('ActiveState') == 'active' and st.get('SubState') == 'running' \
                and m and int(m.group(1)) == 0 and int(m.group(2)) >= 2 \
                and int(m.group(3)) >= self.bytes_sent

        # STATUS= is sent at most once a second: give it a few.
        if not wait_until(good, 15, 0.5):
            raise Failure('after 2 connections and %d bytes: ActiveState=%s SubState=%s '
                          'StatusText=%r' % (self.bytes_sent, last.get('ActiveState'),
                                             last.get('SubState'), last.get('StatusText')))
        return 'ActiveState=%s SubState=%s StatusText=%r' % (
            last['ActiveState'], last['SubState'], last['StatusText'])

    def c_stats_signal(self):
        n = self.count_journal(r'^stats: ')
        self.cexec('systemctl', 'kill', '--kill-who=main', '-s', 'SIGUSR1', 'echod.service')
        if not self.wait_journal(r'^stats: ', n + 1):
            raise Failure('no "stats:" line in the journal after SIGUSR1')
        msg = [m for _, m in self.journal() if m.startswith('stats: ')][-1]
        return msg

    def reload(self, pattern):
        """systemctl reload, then wait for echod's answer in the journal.

        ExecReload only sends SIGHUP, so 'systemctl reload' returns before
        echod has read the file."""
        n = self.count_journal(pattern)
        pid = self.show('echod.service', 'MainPID')['MainPID']
        self.cexec('systemctl', 'reload', 'echod.service')
        if not self.wait_journal(pattern, n + 1):
            raise Failure('no journal line matching %r after systemctl reload' % pattern)
        st = self.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
        if (st['ActiveState'], st['SubState']) != ('active', 'running') or st['MainPID'] != pid:
            raise Failure('after reload: %s/%s MainPID %s (was %s)' % (
                st['ActiveState'], st['SubState'], st['MainPID'], pid))
        return pid

    def c_reload_upper(self):
        self.write_conf('# echod end-to-end test\ntransform = upper\nlog_level = info\n')
        pid = self.reload(r'^configuration reloaded from ' + re.escape(CONF_PATH))
        got = self.echo(b'Hello, echod 123\n')
        if got != b'HELLO, ECHOD 123\n':
            raise Failure('after reload with transform = upper, got %r' % got)
        return 'transform = upper applied to the next connection (MainPID %s kept)' % pid

    def c_reload_broken(self):
        self.write_conf('# echod end-to-end test\ntransform = sideways\nlog_level = info\n')
        # ExecReload= checks the file first: systemctl reload fails and
        # says so, echod is not signalled and keeps running.
        n = self.count_journal(r'^' + re.escape(CONF_PATH) + r':\d+: ')
        pid = self.show('echod.service', 'MainPID')['MainPID']
        p = self.cexec('systemctl', 'reload', 'echod.service', check=False)
        if p.returncode == 0:
            raise Failure('systemctl reload with a broken file succeeded')
        if not self.wait_journal(r'^' + re.escape(CONF_PATH) + r':\d+: ', n + 1):
            raise Failure('no configuration error in the journal after a failed reload')
        st = self.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
        if (st['ActiveState'], st['SubState']) != ('active', 'running') or st['MainPID'] != pid:
            raise Failure('after a failed reload: %s/%s MainPID %s (was %s)' % (
                st['ActiveState'], st['SubState'], st['MainPID'], pid))
        # SIGHUP sent directly: echod itself rejects the file.
        n = self.count_journal(r'^reload failed, keeping the current configuration')
        self.cexec('systemctl', 'kill', '--kill-who=main', '-s', 'SIGHUP', 'echod.service')
        if not self.wait_journal(r'^reload failed, keeping the current configuration', n + 1):
            raise Failure('no "reload failed" line after SIGHUP with a broken file')
        got = self.echo(b'still upper\n')
        if got != b'STILL UPPER\n':
            raise Failure('after a broken reload, got %r (want the old transform)' % got)
        # Back to a good file for what follows.
        self.write_conf('# echod end-to-end test\ntransform = none\nlog_level = info\n')
        self.reload(r'^configuration reloaded from ' + re.escape(CONF_PATH))
        got = self.echo(b'Lower Again\n')
        if got != b'Lower Again\n':
            raise Failure('after restoring transform = none, got %r' % got)
        return ('systemctl reload failed (exit %d), SIGHUP rejected the file, service running '
                '(MainPID %s), still upper-casing' % (p.returncode, pid))

    def c_stop(self):
        # A client stays connected across the stop: echod must have echoed
        # its line, then close the connection cleanly (FIN: the client's
        # socket goes to CLOSE-WAIT) and exit 0.
        client = subprocess.Popen(self.nsenter(['nc', '-N', '-w', '30', '127.0.0.1',
                                                str(PORT)], 60),
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL)
        self.clients.append(client)
        client.stdin.write(b'drain me\n')
        client.stdin.flush()
        got = read_with_timeout(client.stdout, len(b'drain me\n'), 15)
        if got != b'drain me\n':
            raise Failure('connected client got %r before the stop' % got)
        pid = self.show('echod.service', 'MainPID')['MainPID']
        self.cexec('systemctl', 'stop', 'echod.service', timeout=90)

        def closed():
            p = self.cexec('ss', '-Htn', 'state', 'close-wait', 'dport = :%d' % PORT)
            return p.stdout.strip()

        if not wait_until(closed, 15, 0.3):
            p = self.cexec('ss', '-Htna', 'dport = :%d or sport = :%d' % (PORT, PORT))
            raise Failure('the connected client was not closed by echod: %s'
                          % text(p.stdout).strip())
        client.stdin.close()
        rest = read_with_timeout(client.stdout, 1, 30)
        if rest != b'':
            raise Failure('the client got %r after the stop' % rest)
        try:
            client.wait(timeout=30)
        except subprocess.TimeoutExpired:
            raise Failure('nc did not exit after the server closed')
        st = self.show('echod.service', 'ActiveState', 'Result', 'ExecMainStatus',
                       'ExecMainCode')
        if st.get('ActiveState') != 'inactive' or st.get('Result') != 'success':
            raise Failure('after stop: ActiveState=%s Result=%s ExecMainStatus=%s' % (
                st.get('ActiveState'), st.get('Result'), st.get('ExecMainStatus')))
        if not self.wait_journal(r'^shutting down \(1 connections? open\)'):
            raise Failure('no "shutting down (1 connections open)" line in the journal')
        return ('MainPID %s closed its connected client; ActiveState=%s Result=%s '
                'ExecMainStatus=%s' % (pid, st['ActiveState'], st['Result'],
                                       st['ExecMainStatus']))

    def c_journal(self):
        entries = self.journal()
        want = [
            ('listening on', r'^listening on \S+:%d \(tcp\)$' % PORT, 6),
            ('socket activation', r'^using 1 socket\(s\) passed by the service manager', 6),
            ('ready', r'^ready$', 6),
            ('stats', r'^stats: \d+ current, \d+ total connections, \d+ bytes echoed, '
                      r'\d+ accept waits, \d+ datagrams; refused: .*; dropped: .*$', 5),
            ('reloaded', r'^configuration reloaded from ' + re.escape(CONF_PATH) + '$', 5),
            ('config error', r'^' + re.escape(CONF_PATH) + r':\d+: ', 3),
            ('reload failed', r'^reload failed, keeping the current configuration$', 4),
            ('shutting down', r'^shutting down \(\d+ connections? open\)$', 5),
        ]
        problems, seen = [], []
        for what, pattern, prio in want:
            prios = sorted({p for p, m in entries if re.search(pattern, m)})
            if not prios:
                problems.append('no %r line' % what)
            elif prios != [prio]:
                problems.append('%r at priority %s, want %d' % (what, prios, prio))
            else:
                seen.append('%s=%d' % (what, prio))
        for p, m in entries:
            if re.match(r'^(<\d>|echod: )', m):
                problems.append('prefix left in the journal: %r' % m)
                break
        # The same seen the way an operator filters: -p notice hides info.
        p = self.cexec('journalctl', '-u', 'echod.service', '-p', 'notice', '-o', 'cat',
                       '--no-pager')
        notice = [l for l in text(p.stdout).splitlines()]
        if any(l.startswith('listening on') for l in notice):
            problems.append('"listening on" shown by journalctl -p notice')
        if not any(l.startswith('configuration reloaded') for l in notice):
            problems.append('"configuration reloaded" missing from journalctl -p notice')
        if problems:
            raise Failure('; '.join(problems) + '\n' + '\n'.join(
                '  <%d>%s' % e for e in entries))
        return ', '.join(seen)

    def c_sandbox(self):
        got = self.echo(b'sandboxed\n')
        if got != b'sandboxed\n':
            raise Failure('sent %r, got %r' % (b'sandboxed\n', got))
        st = self.show('echod.service', 'ActiveState', 'MainPID', 'DynamicUser',
                       'FragmentPath', 'DropInPaths', 'PrivateNetwork')
        pid = st.get('MainPID', '0')
        if st.get('ActiveState') != 'active' or pid == '0':
            raise Failure('echod.service is %s (MainPID %s)' % (st.get('ActiveState'), pid))
        if st.get('DropInPaths'):
            raise Failure('drop-ins change the unit: %s' % st['DropInPaths'])
        status = text(self.cexec('cat', '/proc/%s/status' % pid).stdout)
        fields = dict(l.split(':', 1) for l in status.splitlines() if ':' in l)
        uids = fields.get('Uid', '').split()
        gids = fields.get('Gid', '').split()
        problems = []
        if st.get('DynamicUser') != 'yes':
            problems.append('DynamicUser=%s' % st.get('DynamicUser'))
        if not uids or '0' in uids or not gids or '0' in gids:
            problems.append('Uid %s Gid %s' % (uids, gids))
        for cap in ('CapEff', 'CapPrm', 'CapBnd', 'CapAmb'):
            if int(fields.get(cap, '1').strip(), 16) != 0:
                problems.append('%s %s' % (cap, fields.get(cap, '?').strip()))
        if fields.get('NoNewPrivs', '').strip() != '1':
            problems.append('NoNewPrivs %s' % fields.get('NoNewPrivs', '?').strip())
        if fields.get('Seccomp', '').strip() != '2':
            problems.append('Seccomp %s' % fields.get('Seccomp', '?').strip())
        ns = self.cexec('readlink', '/proc/1/ns/net', '/proc/%s/ns/net' % pid).stdout.split()
        if len(ns) != 2 or ns[0] == ns[1]:
            problems.append('not in a network namespace of its own (%s)' % ns)
        if problems:
            raise Failure('MainPID %s: %s' % (pid, ', '.join(problems)))
        return ('echo works; MainPID %s runs as dynamic uid %s, CapEff=CapBnd=0, NoNewPrivs=1, '
                'seccomp filter, own network namespace' % (pid, uids[0]))

    def c_watchdog(self):
        dropin = '/run/systemd/system/echod.service.d/50-e2e-watchdog.conf'
        self.cexec('sh', '-c', 'mkdir -p "${0%/*}" && cat > "$0"', dropin,
                   input=b'[Service]\nWatchdogSec=%ds\n' % WATCHDOG_SEC)
        self.cexec('systemctl', 'daemon-reload')
        self.cexec('systemctl', 'restart', 'echod.service', timeout=90)
        st = self.show('echod.service', 'ActiveState', 'SubState', 'MainPID', 'NRestarts',
                       'WatchdogUSec')
        if (st['ActiveState'], st['SubState']) != ('active', 'running'):
            raise Failure('after restart with WatchdogSec=%ds: %s/%s'
                          % (WATCHDOG_SEC, st['ActiveState'], st['SubState']))
        if st['WatchdogUSec'] != '%ds' % WATCHDOG_SEC:
            raise Failure('WatchdogUSec=%s' % st['WatchdogUSec'])
        pid, restarts = st['MainPID'], int(st['NRestarts'])
        # Alive under the short watchdog for several periods first.
        time.sleep(3 * WATCHDOG_SEC)
        st = self.show('echod.service', 'MainPID', 'NRestarts')
        if st['MainPID'] != pid or int(st['NRestarts']) != restarts:
            raise Failure('restarted although the loop ran: MainPID %s->%s NRestarts %d->%s'
                          % (pid, st['MainPID'], restarts, st['NRestarts']))
        self.cexec('kill', '-STOP', pid)
        last = {}

        def restarted():
            last.update(self.show('echod.service', 'ActiveState', 'SubState', 'MainPID',
                                  'NRestarts'))
            return last['MainPID'] not in ('0', pid) and \
                int(last['NRestarts']) == restarts + 1 and \
                (last['ActiveState'], last['SubState']) == ('active', 'running')

        if not wait_until(restarted, 60, 0.5):
            raise Failure('60 s after SIGSTOP: %s/%s MainPID %s (was %s) NRestarts %s (was %d)'
                          % (last.get('ActiveState'), last.get('SubState'),
                             last.get('MainPID'), pid, last.get('NRestarts'), restarts))
        timeouts = self.systemd_journal(r'[Ww]atchdog timeout')
        if not timeouts:
            raise Failure('restarted, but systemd logged no watchdog timeout')
        got = self.echo(b'after the watchdog\n')
        if got != b'after the watchdog\n':
            raise Failure('after the restart, got %r' % got)
        return 'MainPID %s -> %s, NRestarts %d -> %s, %r; echo works' % (
            pid, last['MainPID'], restarts, last['NRestarts'], timeouts[-1].strip())

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


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)
    t0 = time.monotonic()
    e2e = E2E()
    failed = interrupted = False
    try:
        e2e.preflight()
        e2e.setup()
        e2e.boot()
        checks = [
            ('socket-start', e2e.c_socket_start),
            ('echo-line', e2e.c_echo_line),
            ('echo-binary', e2e.c_echo_binary),
            ('status-text', e2e.c_status),
            ('stats-signal', e2e.c_stats_signal),
            ('reload-applies', e2e.c_reload_upper),
            ('reload-broken-config', e2e.c_reload_broken),
            ('stop-drains', e2e.c_stop),
            ('journal-priorities', e2e.c_journal),
            ('sandbox-in-force', e2e.c_sandbox),
            ('watchdog-restart', e2e.c_watchdog),
        ]
        for name, fn in checks:
            e2e.check(name, fn)
        failed = not all(ok for _, ok in e2e.results)
    except Skip as e:
        log('SKIP: %s' % e)
        e2e.cleanup()
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
            e2e.dump_journal()
    finally:
        e2e.cleanup()
    n_ok = len([1 for _, ok in e2e.results if ok])
    log('# %d of %d checks passed%s in %.1f s (container tree: %s)' % (
        n_ok, len(e2e.results), ' before the interruption' if interrupted else '',
        time.monotonic() - t0,
        ('made in %.0f s' % e2e.tree_time) if e2e.tree_made else
        'cached' if e2e.tree else 'none'))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
