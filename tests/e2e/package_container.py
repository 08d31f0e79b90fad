"""The container for the Debian package: the same as for the build, but
with the .deb bound in instead of the staged files, and the helpers its
checks need (a snapshot of the root file system, listening ports)."""

import os
import shutil
import tempfile
import time

from common import CONF_PATH, Failure, Skip, log, run, text
from container import Container
from stage import nspawn_escape
from tree import ensure_tree

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


class PackageContainer(Container):
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
        p = run(['dpkg-deb', '--field', self.deb, 'Package', 'Version', 'Architecture'])
        fields = dict(line.split(': ', 1) for line in text(p.stdout).splitlines() if ': ' in line)
        arch = text(run(['dpkg', '--print-architecture']).stdout).strip()
        if fields.get('Package') != 'echod':
            raise Failure('%s is not the echod package: %s' % (self.deb, fields))
        if fields.get('Architecture') not in (arch, 'all'):
            raise Skip('%s is for %s, this machine is %s'
                       % (self.deb, fields.get('Architecture'), arch))
        self.version = fields.get('Version')

    def setup(self):
        t0 = time.monotonic()
        self.tree, self.tree_made = ensure_tree(self.cache)
        self.tree_time = time.monotonic() - t0
        self.workdir = tempfile.mkdtemp(prefix='run.%d.' % os.getpid(),
                                        dir=os.path.dirname(self.tree))
        os.chmod(self.workdir, 0o755)
        self.staged = {}
        self.container_deb = DEB_DIR + '/' + os.path.basename(self.deb)
        log('# package: %s (%s)' % (self.deb, self.version))

    def binds(self):
        return ['--bind-ro=%s:%s' % (nspawn_escape(os.path.dirname(self.deb)), DEB_DIR)]

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
