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

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import e2e
from e2e import CONF_PATH, PORT, SKIP, Failure, Interrupted, Skip, log, text, wait_until

DEB_DIR = '/mnt/echod-deb'
INSTANCE_PORT = 7008
# Paths whose contents change whatever the package does: logs, caches,
# dpkg's and apt's own records.
IGNORED = ('/var/log', '/var/cache', '/var/lib/dpkg', '/var/lib/apt', DEB_DIR)
UNITDIR = '/lib/systemd/system'
INSTALLED = ['/usr/sbin/echod', '/usr/bin/echod-bench', CONF_PATH,
             UNITDIR + '/echod.socket', UNITDIR + '/echod.service',
             UNITDIR + '/echod@.socket', UNITDIR + '/echod@.service',
             '/usr/share/man/man8/echod.8.gz', '/usr/share/man/man5/echod.conf.5.gz',
             '/usr/share/man/man1/echod-bench.1.gz', '/usr/share/doc/echod/copyright']


class PackageE2E(e2e.E2E):
    def preflight(self):
        deb = os.environ.get('ECHOD_DEB')
        if not deb:
            raise Skip('ECHOD_DEB is not set (tools/dev.sh deb builds the package)')
        self.deb = os.path.abspath(deb)
        if not os.path.isfile(self.deb):
            raise Failure('ECHOD_DEB=%s: no such file' % deb)
        super().preflight()
        if not shutil.which('dpkg-deb'):
            raise Skip('dpkg-deb is not installed')
        p = e2e.run(['dpkg-deb', '--field', self.deb, 'Package', 'Version', 'Architecture'])
        fields = dict(l.split(': ', 1) for l in text(p.stdout).splitlines() if ': ' in l)
        arch = text(e2e.run(['dpkg', '--print-architecture']).stdout).strip()
        if fields.get('Package') != 'echod':
            raise Failure('%s is not the echod package: %s' % (self.deb, fields))
        if fields.get('Architecture') not in (arch, 'all'):
            raise Skip('%s is for %s, this machine is %s'
                       % (self.deb, fields.get('Architecture'), arch))
        self.version = fields.get('Version')

    def setup(self):
        t0 = time.monotonic()
        self.tree, self.tree_made = e2e.ensure_tree(self.cache)
        self.tree_time = time.monotonic() - t0
        self.workdir = tempfile.mkdtemp(prefix='run.%d.' % os.getpid(),
                                        dir=os.path.dirname(self.tree))
        os.chmod(self.workdir, 0o755)
        self.staged = {}
        self.container_deb = DEB_DIR + '/' + os.path.basename(self.deb)
        log('# package: %s (%s)' % (self.deb, self.version))

    def binds(self):
        return ['--bind-ro=%s:%s' % (e2e.nspawn_escape(os.path.dirname(self.deb)), DEB_DIR)]

    # -- helpers -----------------------------------------------------------

    def snapshot(self):
        """Every path on the container's root file system, with its type and
        mode (and link target), and a checksum of every file under /etc."""
        prune = ' -o '.join('-path %s' % p for p in IGNORED)
        script = ('find / -xdev \\( %s \\) -prune -o ! -type l -printf "%%y %%m %%p\\n" '
                  '-o -printf "l %%p -> %%l\\n"; '
                  'find /etc -xdev -type f -exec md5sum {} +' % prune)
        p = self.cexec('sh', '-c', script, timeout=120)
        return set(text(p.stdout).splitlines())

    def listening(self, port):
        p = self.cexec('ss', '-Htln', 'sport = :%d' % port)
        return text(p.stdout).strip()

    def echo_port(self, data, port):
        p = self.cexec('nc', '-N', '-w', '10', '127.0.0.1', str(port), input=data,
                       check=False)
        if p.returncode != 0:
            raise Failure('nc to port %d exited %d: %s'
                          % (port, p.returncode, text(p.stderr).strip()))
        return p.stdout

    def set_conf(self, content):
        self.cexec('sh', '-c', 'cat > "$0"', CONF_PATH, input=content.encode())

    # -- checks ------------------------------------------------------------

    def c_install(self):
        self.before = self.snapshot()
        p = self.cexec('dpkg', '-i', self.container_deb, timeout=120, check=False,
                       stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise Failure('dpkg -i exited %d:\n%s' % (p.returncode, text(p.stdout)))
        status = text(self.cexec('dpkg-query', '-W', '-f=${Status} ${Version}',
                                 'echod').stdout)
        if status != 'install ok installed %s' % self.version:
            raise Failure('dpkg-query: %r' % status)
        listed = set(text(self.cexec('dpkg', '-L', 'echod').stdout).splitlines())
        missing = [f for f in INSTALLED if f not in listed]
        if missing:
            raise Failure('not installed: %s' % ', '.join(missing))
        conffiles = text(self.cexec('dpkg-query', '-W', '-f=${Conffiles}', 'echod').stdout)
        if not re.search(r'^\s*%s ' % re.escape(CONF_PATH), conffiles, re.M):
            raise Failure('%s is not a conffile: %r' % (CONF_PATH, conffiles))
        st = self.show('echod.socket', 'UnitFileState', 'ActiveState', 'FragmentPath')
        sv = self.show('echod.service', 'ActiveState')
        if st.get('UnitFileState') != 'disabled' or st.get('ActiveState') != 'inactive' \
                or sv.get('ActiveState') != 'inactive':
            raise Failure('after installation: echod.socket %s/%s, echod.service %s (want '
                          'disabled and inactive)' % (st.get('UnitFileState'),
                                                       st.get('ActiveState'),
                                                       sv.get('ActiveState')))
        if st.get('FragmentPath') != UNITDIR + '/echod.socket':
            raise Failure('echod.socket loaded from %r' % st.get('FragmentPath'))
        if self.listening(PORT):
            raise Failure('port %d is open after installation: %s' % (PORT, self.listening(PORT)))
        return '%s installed, %d files; %s a conffile; echod.socket disabled and inactive' % (
            self.version, len(listed), CONF_PATH)

    def c_socket_start(self):
        self.cexec('systemctl', 'start', 'echod.socket')
        st = self.show('echod.socket', 'ActiveState', 'Listen')
        if st.get('ActiveState') != 'active':
            raise Failure('echod.socket is %s' % st.get('ActiveState'))
        exe = self.show('echod.service', 'ExecStart').get('ExecStart', '')
        if not re.search(r'\bpath=/usr/sbin/echod ', exe):
            raise Failure('echod.service runs %r, not /usr/sbin/echod' % exe)
        return 'echod.socket active on %s' % st.get('Listen')

    def c_echo(self):
        line = b'hello, packaged echod\n'
        got = self.echo(line)
        if got != line:
            raise Failure('sent %r, got %r' % (line, got))
        st = self.show('echod.service', 'ActiveState', 'MainPID')
        if st.get('ActiveState') != 'active':
            raise Failure('echo worked but echod.service is %s' % st.get('ActiveState'))
        return 'echoed %r; echod.service active, MainPID %s' % (line, st['MainPID'])

    def c_reload(self):
        self.set_conf('# edited by the administrator\ntransform = upper\n')
        pid = self.reload(r'^configuration reloaded from ' + re.escape(CONF_PATH))
        got = self.echo(b'Reloaded\n')
        if got != b'RELOADED\n':
            raise Failure('after reload with transform = upper, got %r' % got)
        return 'systemctl reload: transform = upper applied (MainPID %s kept)' % pid

    def c_reload_broken(self):
        error = r'^' + re.escape(CONF_PATH) + r':\d+: '
        n = self.count_journal(error)
        pid = self.show('echod.service', 'MainPID')['MainPID']
        self.set_conf('# edited by the administrator\ntransform = sideways\n')
        p = self.cexec('systemctl', 'reload', 'echod.service', check=False,
                       stderr=subprocess.STDOUT)
        if p.returncode == 0:
            raise Failure('systemctl reload with a broken file succeeded')
        if not self.wait_journal(error, n + 1):
            raise Failure('no configuration error in the journal after the failed reload')
        msg = [m for _, m in self.journal() if re.search(error, m)][-1]
        st = self.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
        if (st['ActiveState'], st['SubState']) != ('active', 'running') or st['MainPID'] != pid:
            raise Failure('after the failed reload: %s/%s MainPID %s (was %s)' % (
                st['ActiveState'], st['SubState'], st['MainPID'], pid))
        got = self.echo(b'still upper\n')
        if got != b'STILL UPPER\n':
            raise Failure('after the failed reload, got %r (want the old transform)' % got)
        # A good file again; it stays modified, for the purge to remove.
        self.set_conf('# edited by the administrator\ntransform = upper\n')
        return 'systemctl reload exit %d (%s); journal: %r; MainPID %s kept serving' % (
            p.returncode, text(p.stdout).strip(), msg, pid)

    def c_stop(self):
        self.cexec('systemctl', 'stop', 'echod.socket', 'echod.service', timeout=90)
        st = self.show('echod.socket', 'ActiveState')
        sv = self.show('echod.service', 'ActiveState', 'Result')
        if st.get('ActiveState') != 'inactive' or sv.get('ActiveState') != 'inactive':
            raise Failure('after stop: echod.socket %s, echod.service %s'
                          % (st.get('ActiveState'), sv.get('ActiveState')))
        if sv.get('Result') != 'success':
            raise Failure('echod.service Result=%s' % sv.get('Result'))
        if self.listening(PORT):
            raise Failure('port %d still open after stop' % PORT)
        return 'echod.socket and echod.service inactive, Result=success, port %d closed' % PORT

    def c_purge(self):
        # Enabled and running, with a template instance beside it: the
        # purge must stop both and remove the enablement.
        self.cexec('systemctl', 'enable', '--now', 'echod.socket')
        if self.echo(b'before purge\n') != b'BEFORE PURGE\n':
            raise Failure('echod.socket enabled, but no echo')
        dropin = '/run/systemd/system/echod@0.socket.d/50-e2e-port.conf'
        self.cexec('sh', '-c', 'mkdir -p "${0%/*}" && cat > "$0"', dropin,
                   input=b'[Socket]\nListenStream=\nListenStream=%d\n' % INSTANCE_PORT)
        self.cexec('systemctl', 'daemon-reload')
        self.cexec('systemctl', 'start', 'echod@0.socket')
        if self.echo_port(b'instance\n', INSTANCE_PORT) != b'INSTANCE\n':
            raise Failure('echod@0 gives no echo on port %d' % INSTANCE_PORT)
        p = self.cexec('apt-get', 'purge', '-y', 'echod', timeout=120, check=False,
                       stderr=subprocess.STDOUT)
        if p.returncode != 0:
            raise Failure('apt-get purge exited %d:\n%s' % (p.returncode, text(p.stdout)))
        problems = []
        q = self.cexec('dpkg-query', '-W', '-f=${Status}', 'echod', check=False)
        if q.returncode == 0 and text(q.stdout).split()[-1:] != ['not-installed']:
            problems.append('dpkg-query: %r' % text(q.stdout))
        for port in (PORT, INSTANCE_PORT):
            if self.listening(port):
                problems.append('port %d still open' % port)
        running = self.cexec('systemctl', 'list-units', '--no-legend', '--plain', '--all',
                             '--state=active,activating,deactivating,failed', 'echod*')
        if text(running.stdout).strip():
            problems.append('units left: %s' % text(running.stdout).strip().replace('\n', '; '))
        self.cexec('rm', '-r', os.path.dirname(dropin))
        after = self.snapshot()
        added, removed = sorted(after - self.before), sorted(self.before - after)
        problems += ['left behind: %s' % a for a in added]
        problems += ['gone or changed: %s' % r for r in removed]
        if problems:
            raise Failure('after apt-get purge:\n  ' + '\n  '.join(problems))
        return ('enabled socket and echod@0 stopped, no echod unit left, the root file '
                'system as before installation (%d paths compared)' % len(after))


def main():
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, e2e.on_signal)
    t0 = time.monotonic()
    t = PackageE2E()
    failed = interrupted = False
    try:
        t.preflight()
        t.setup()
        t.boot()
        checks = [
            ('package-install', t.c_install),
            ('package-socket-start', t.c_socket_start),
            ('package-echo', t.c_echo),
            ('package-reload', t.c_reload),
            ('package-reload-broken', t.c_reload_broken),
            ('package-stop', t.c_stop),
            ('package-purge', t.c_purge),
        ]
        for name, fn in checks:
            # Each check builds on the one before: stop at the first failure.
            if not t.check(name, fn):
                break
        failed = not all(ok for _, ok in t.results)
    except Skip as e:
        log('SKIP: %s' % e)
        t.cleanup()
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
            t.dump_journal()
    finally:
        t.cleanup()
    n_ok = len([1 for _, ok in t.results if ok])
    log('# %d of %d checks passed%s in %.1f s' % (
        n_ok, len(t.results), ' before the interruption' if interrupted else '',
        time.monotonic() - t0))
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
