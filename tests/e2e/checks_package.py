"""Checks of the Debian package as an administrator meets it: install,
start, echo, reload, a refused reload, stop, purge. Each takes the
PackageContainer; it returns a detail for the report or raises Failure."""

import os
import re
import subprocess

from checks_service import reload_refused, reload_to_upper
from common import CONF_PATH, PORT, Failure, text
from package_container import INSTALLED, INSTANCE_PORT, UNITDIR


def install(box):
    box.before = box.snapshot()
    p = box.cexec('dpkg', '-i', box.container_deb, timeout=120, check=False,
                  stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise Failure('dpkg -i exited %d:\n%s' % (p.returncode, text(p.stdout)))
    status = text(box.cexec('dpkg-query', '-W', '-f=${Status} ${Version}',
                            'echod').stdout)
    if status != 'install ok installed %s' % box.version:
        raise Failure('dpkg-query: %r' % status)
    listed = set(text(box.cexec('dpkg', '-L', 'echod').stdout).splitlines())
    missing = [f for f in INSTALLED if f not in listed]
    if missing:
        raise Failure('not installed: %s' % ', '.join(missing))
    conffiles = text(box.cexec('dpkg-query', '-W', '-f=${Conffiles}', 'echod').stdout)
    if not re.search(r'^\s*%s ' % re.escape(CONF_PATH), conffiles, re.M):
        raise Failure('%s is not a conffile: %r' % (CONF_PATH, conffiles))
    st = box.show('echod.socket', 'UnitFileState', 'ActiveState', 'FragmentPath')
    sv = box.show('echod.service', 'ActiveState')
    if st.get('UnitFileState') != 'disabled' or st.get('ActiveState') != 'inactive' \
            or sv.get('ActiveState') != 'inactive':
        raise Failure('after installation: echod.socket %s/%s, echod.service %s (want '
                      'disabled and inactive)' % (st.get('UnitFileState'),
                                                  st.get('ActiveState'),
                                                  sv.get('ActiveState')))
    if st.get('FragmentPath') != UNITDIR + '/echod.socket':
        raise Failure('echod.socket loaded from %r' % st.get('FragmentPath'))
    if box.listening(PORT):
        raise Failure('port %d is open after installation: %s' % (PORT, box.listening(PORT)))
    return '%s installed, %d files; %s a conffile; echod.socket disabled and inactive' % (
        box.version, len(listed), CONF_PATH)


def socket_start(box):
    box.cexec('systemctl', 'start', 'echod.socket')
    st = box.show('echod.socket', 'ActiveState', 'Listen')
    if st.get('ActiveState') != 'active':
        raise Failure('echod.socket is %s' % st.get('ActiveState'))
    exe = box.show('echod.service', 'ExecStart').get('ExecStart', '')
    if not re.search(r'\bpath=/usr/sbin/echod ', exe):
        raise Failure('echod.service runs %r, not /usr/sbin/echod' % exe)
    return 'echod.socket active on %s' % st.get('Listen')


def echo(box):
    line = b'hello, packaged echod\n'
    got = box.echo(line)
    if got != line:
        raise Failure('sent %r, got %r' % (line, got))
    st = box.show('echod.service', 'ActiveState', 'MainPID')
    if st.get('ActiveState') != 'active':
        raise Failure('echo worked but echod.service is %s' % st.get('ActiveState'))
    return 'echoed %r; echod.service active, MainPID %s' % (line, st['MainPID'])


def reload_applies(box):
    pid = reload_to_upper(box, box.set_conf, '# edited by the administrator\ntransform = upper\n',
                          b'Reloaded\n')
    return 'systemctl reload: transform = upper applied (MainPID %s kept)' % pid


def reload_broken(box):
    box.set_conf('# edited by the administrator\ntransform = sideways\n')
    p, pid = reload_refused(box)
    error = r'^' + re.escape(CONF_PATH) + r':\d+: '
    msg = [m for _, m in box.journal() if re.search(error, m)][-1]
    got = box.echo(b'still upper\n')
    if got != b'STILL UPPER\n':
        raise Failure('after the failed reload, got %r (want the old transform)' % got)
    # A good file again; it stays modified, for the purge to remove.
    box.set_conf('# edited by the administrator\ntransform = upper\n')
    return 'systemctl reload exit %d (%s); journal: %r; MainPID %s kept serving' % (
        p.returncode, text(p.stdout).strip(), msg, pid)


def stop(box):
    box.cexec('systemctl', 'stop', 'echod.socket', 'echod.service', timeout=90)
    st = box.show('echod.socket', 'ActiveState')
    sv = box.show('echod.service', 'ActiveState', 'Result')
    if st.get('ActiveState') != 'inactive' or sv.get('ActiveState') != 'inactive':
        raise Failure('after stop: echod.socket %s, echod.service %s'
                      % (st.get('ActiveState'), sv.get('ActiveState')))
    if sv.get('Result') != 'success':
        raise Failure('echod.service Result=%s' % sv.get('Result'))
    if box.listening(PORT):
        raise Failure('port %d still open after stop' % PORT)
    return 'echod.socket and echod.service inactive, Result=success, port %d closed' % PORT


def purge(box):
    # Enabled and running, with a template instance beside it: the
    # purge must stop both and remove the enablement.
    box.cexec('systemctl', 'enable', '--now', 'echod.socket')
    if box.echo(b'before purge\n') != b'BEFORE PURGE\n':
        raise Failure('echod.socket enabled, but no echo')
    dropin = '/run/systemd/system/echod@0.socket.d/50-e2e-port.conf'
    box.cexec('sh', '-c', 'mkdir -p "${0%/*}" && cat > "$0"', dropin,
              input=b'[Socket]\nListenStream=\nListenStream=%d\n' % INSTANCE_PORT)
    box.cexec('systemctl', 'daemon-reload')
    box.cexec('systemctl', 'start', 'echod@0.socket')
    if box.echo_port(b'instance\n', INSTANCE_PORT) != b'INSTANCE\n':
        raise Failure('echod@0 gives no echo on port %d' % INSTANCE_PORT)
    p = box.cexec('apt-get', 'purge', '-y', 'echod', timeout=120, check=False,
                  stderr=subprocess.STDOUT)
    if p.returncode != 0:
        raise Failure('apt-get purge exited %d:\n%s' % (p.returncode, text(p.stdout)))
    problems = []
    q = box.cexec('dpkg-query', '-W', '-f=${Status}', 'echod', check=False)
    if q.returncode == 0 and text(q.stdout).split()[-1:] != ['not-installed']:
        problems.append('dpkg-query: %r' % text(q.stdout))
    for port in (PORT, INSTANCE_PORT):
        if box.listening(port):
            problems.append('port %d still open' % port)
    running = box.cexec('systemctl', 'list-units', '--no-legend', '--plain', '--all',
                        '--state=active,activating,deactivating,failed', 'echod*')
    if text(running.stdout).strip():
        problems.append('units left: %s' % text(running.stdout).strip().replace('\n', '; '))
    box.cexec('rm', '-r', os.path.dirname(dropin))
    after = box.snapshot()
    added, removed = sorted(after - box.before), sorted(box.before - after)
    problems += ['left behind: %s' % a for a in added]
    problems += ['gone or changed: %s' % r for r in removed]
    if problems:
        raise Failure('after apt-get purge:\n  ' + '\n  '.join(problems))
    return ('enabled socket and echod@0 stopped, no echod unit left, the root file '
            'system as before installation (%d paths compared)' % len(after))
