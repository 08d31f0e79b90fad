"""The container tree: a minimal Debian made once by debootstrap and
cached (by suite, variant, architecture and package list) outside the
source tree."""

import fcntl
import glob
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time

from common import PACKAGES, SUITE, VARIANT, Failure, Skip, log, run
from host import kill_descendants, mounts_under, remove_tree, set_child_subreaper, try_lock


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
