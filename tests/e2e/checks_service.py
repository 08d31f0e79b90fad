"""Checks of the service as an operator sees it: the socket, echoing,
the status text, stats, reload and stop. Each takes the Container;
it returns a detail for the report or raises Failure."""

import hashlib
import os
import re
import subprocess

from common import CONF_PATH, PORT, STATUS_RE, UNIT_DIRS, Failure, read_with_timeout, text, wait_until


def socket_start(box):
    box.cexec('systemctl', 'start', 'echod.socket')
    s = box.show('echod.socket', 'ActiveState', 'Listen', 'FragmentPath')
    if s.get('ActiveState') != 'active':
        raise Failure('echod.socket is %s' % s.get('ActiveState'))
    if not re.search(r'(^|[\]:\s])%d \(Stream\)' % PORT, s.get('Listen', '')):
        raise Failure('echod.socket listens on %r, not port %d' % (s.get('Listen'), PORT))
    v = box.show('echod.service', 'ActiveState', 'FragmentPath')
    if v.get('ActiveState') != 'inactive':
        raise Failure('echod.service is %s before any client' % v.get('ActiveState'))
    for unit, frag in (('echod.socket', s.get('FragmentPath')),
                       ('echod.service', v.get('FragmentPath'))):
        if frag not in [d + '/' + unit for d in UNIT_DIRS]:
            raise Failure('%s was loaded from %r, not from the unit directory'
                          % (unit, frag))
        inside = box.cexec('cat', frag).stdout
        with open(box.staged[box.units[unit]], 'rb') as f:
            if f.read() != inside:
                raise Failure('%s in the container differs from the installed one' % frag)
    exe = box.show('echod.service', 'ExecStart').get('ExecStart', '')
    if not re.search(r'\bpath=/usr/sbin/echod ', exe):
        raise Failure('echod.service runs %r, not /usr/sbin/echod' % exe)
    inside = text(box.cexec('sha256sum', '/usr/sbin/echod').stdout).split()[0]
    with open(box.staged['/usr/sbin/echod'], 'rb') as f:
        if hashlib.sha256(f.read()).hexdigest() != inside:
            raise Failure('/usr/sbin/echod in the container differs from the installed one')
    return 'socket active on %s; service inactive; units from %s run /usr/sbin/echod' % (
        s['Listen'], os.path.dirname(v['FragmentPath']))


def echo_line(box):
    line = b'hello, echod\n'
    got = box.echo(line)
    if got != line:
        raise Failure('sent %r, got %r' % (line, got))
    st = box.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
    if st.get('ActiveState') != 'active':
        raise Failure('echo worked but echod.service is %s' % st.get('ActiveState'))
    box.bytes_sent = len(line)
    return 'echoed %r; echod.service activated (%s/%s, MainPID %s)' % (
        line, st['ActiveState'], st['SubState'], st['MainPID'])


def echo_binary(box):
    data = bytes(range(256)) * 16 + os.urandom(1 << 20) + b'\0\r\n\xff\xfe'
    got = box.echo(data)
    want, have = hashlib.sha256(data).hexdigest(), hashlib.sha256(got).hexdigest()
    if want != have:
        raise Failure('sent %d bytes sha256 %s, got %d bytes sha256 %s'
                      % (len(data), want[:16], len(got), have[:16]))
    box.bytes_sent += len(data)
    return '%d bytes, sha256 %s...' % (len(data), want[:16])


def status(box):
    last = {}

    def good():
        st = box.show('echod.service', 'ActiveState', 'SubState', 'StatusText')
        last.update(st)
        m = STATUS_RE.match(st.get('StatusText', ''))
        return st.get('ActiveState') == 'active' and st.get('SubState') == 'running' \
            and m and int(m.group(1)) == 0 and int(m.group(2)) >= 2 \
            and int(m.group(3)) >= box.bytes_sent

    # STATUS= is sent at most once a second: give it a few.
    if not wait_until(good, 15, 0.5):
        raise Failure('after 2 connections and %d bytes: ActiveState=%s SubState=%s '
                      'StatusText=%r' % (box.bytes_sent, last.get('ActiveState'),
                                         last.get('SubState'), last.get('StatusText')))
    return 'ActiveState=%s SubState=%s StatusText=%r' % (
        last['ActiveState'], last['SubState'], last['StatusText'])


def stats_signal(box):
    n = box.count_journal(r'^stats: ')
    box.cexec('systemctl', 'kill', '--kill-who=main', '-s', 'SIGUSR1', 'echod.service')
    if not box.wait_journal(r'^stats: ', n + 1):
        raise Failure('no "stats:" line in the journal after SIGUSR1')
    msg = [m for _, m in box.journal() if m.startswith('stats: ')][-1]
    return msg


def reload(box, pattern):
    """systemctl reload, then wait for echod's answer in the journal.

    ExecReload only sends SIGHUP, so 'systemctl reload' returns before
    echod has read the file."""
    n = box.count_journal(pattern)
    pid = box.show('echod.service', 'MainPID')['MainPID']
    box.cexec('systemctl', 'reload', 'echod.service')
    if not box.wait_journal(pattern, n + 1):
        raise Failure('no journal line matching %r after systemctl reload' % pattern)
    check_running(box, pid, 'after reload')
    return pid


def check_running(box, pid, when):
    """echod.service is active and running, still as MainPID pid."""
    st = box.show('echod.service', 'ActiveState', 'SubState', 'MainPID')
    if (st['ActiveState'], st['SubState']) != ('active', 'running') or st['MainPID'] != pid:
        raise Failure('%s: %s/%s MainPID %s (was %s)' % (
            when, st['ActiveState'], st['SubState'], st['MainPID'], pid))


def reload_to_upper(box, write_conf, conf, line):
    """Writes conf (transform = upper) with write_conf, reloads, and checks
    that line comes back upper-cased. Returns echod's MainPID."""
    write_conf(conf)
    pid = reload(box, r'^configuration reloaded from ' + re.escape(CONF_PATH))
    got = box.echo(line)
    if got != line.upper():
        raise Failure('after reload with transform = upper, got %r' % got)
    return pid


def reload_upper(box):
    pid = reload_to_upper(box, box.write_conf,
                          '# echod end-to-end test\ntransform = upper\nlog_level = info\n',
                          b'Hello, echod 123\n')
    return 'transform = upper applied to the next connection (MainPID %s kept)' % pid


def reload_refused(box):
    """systemctl reload with a broken file: ExecReload= checks the file
    first, so the reload fails and the journal says why; echod is not
    signalled and keeps running. Returns (systemctl's result, MainPID)."""
    error = r'^' + re.escape(CONF_PATH) + r':\d+: '
    n = box.count_journal(error)
    pid = box.show('echod.service', 'MainPID')['MainPID']
    p = box.cexec('systemctl', 'reload', 'echod.service', check=False, stderr=subprocess.STDOUT)
    if p.returncode == 0:
        raise Failure('systemctl reload with a broken file succeeded')
    if not box.wait_journal(error, n + 1):
        raise Failure('no configuration error in the journal after the failed reload')
    check_running(box, pid, 'after the failed reload')
    return p, pid


def reload_broken(box):
    box.write_conf('# echod end-to-end test\ntransform = sideways\nlog_level = info\n')
    p, pid = reload_refused(box)
    # SIGHUP sent directly: echod itself rejects the file.
    n = box.count_journal(r'^reload failed, keeping the current configuration')
    box.cexec('systemctl', 'kill', '--kill-who=main', '-s', 'SIGHUP', 'echod.service')
    if not box.wait_journal(r'^reload failed, keeping the current configuration', n + 1):
        raise Failure('no "reload failed" line after SIGHUP with a broken file')
    got = box.echo(b'still upper\n')
    if got != b'STILL UPPER\n':
        raise Failure('after a broken reload, got %r (want the old transform)' % got)
    # Back to a good file for what follows.
    box.write_conf('# echod end-to-end test\ntransform = none\nlog_level = info\n')
    reload(box, r'^configuration reloaded from ' + re.escape(CONF_PATH))
    got = box.echo(b'Lower Again\n')
    if got != b'Lower Again\n':
        raise Failure('after restoring transform = none, got %r' % got)
    return ('systemctl reload failed (exit %d), SIGHUP rejected the file, service running '
            '(MainPID %s), still upper-casing' % (p.returncode, pid))


def stop(box):
    # A client stays connected across the stop: echod must have echoed
    # its line, then close the connection cleanly (FIN: the client's
    # socket goes to CLOSE-WAIT) and exit 0.
    client = subprocess.Popen(box.nsenter(['nc', '-N', '-w', '30', '127.0.0.1',
                                           str(PORT)], 60),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL)
    box.clients.append(client)
    client.stdin.write(b'drain me\n')
    client.stdin.flush()
    got = read_with_timeout(client.stdout, len(b'drain me\n'), 15)
    if got != b'drain me\n':
        raise Failure('connected client got %r before the stop' % got)
    pid = box.show('echod.service', 'MainPID')['MainPID']
    box.cexec('systemctl', 'stop', 'echod.service', timeout=90)

    def closed():
        p = box.cexec('ss', '-Htn', 'state', 'close-wait', 'dport = :%d' % PORT)
        return p.stdout.strip()

    if not wait_until(closed, 15, 0.3):
        p = box.cexec('ss', '-Htna', 'dport = :%d or sport = :%d' % (PORT, PORT))
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
    st = box.show('echod.service', 'ActiveState', 'Result', 'ExecMainStatus',
                  'ExecMainCode')
    if st.get('ActiveState') != 'inactive' or st.get('Result') != 'success':
        raise Failure('after stop: ActiveState=%s Result=%s ExecMainStatus=%s' % (
            st.get('ActiveState'), st.get('Result'), st.get('ExecMainStatus')))
    if not box.wait_journal(r'^shutting down \(1 connections? open\)'):
        raise Failure('no "shutting down (1 connections open)" line in the journal')
    return ('MainPID %s closed its connected client; ActiveState=%s Result=%s '
            'ExecMainStatus=%s' % (pid, st['ActiveState'], st['Result'],
                                   st['ExecMainStatus']))
