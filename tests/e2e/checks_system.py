"""Checks of what systemd adds: journal priorities, the sandbox, the
watchdog. Each takes the Container; it returns a detail for the report
or raises Failure."""

import re
import time

from common import CONF_PATH, PORT, WATCHDOG_SEC, Failure, text, wait_until


def journal(box):
    entries = box.journal()
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
    p = box.cexec('journalctl', '-u', 'echod.service', '-p', 'notice', '-o', 'cat',
                  '--no-pager')
    notice = [line for line in text(p.stdout).splitlines()]
    if any(line.startswith('listening on') for line in notice):
        problems.append('"listening on" shown by journalctl -p notice')
    if not any(line.startswith('configuration reloaded') for line in notice):
        problems.append('"configuration reloaded" missing from journalctl -p notice')
    if problems:
        raise Failure('; '.join(problems) + '\n' + '\n'.join(
            '  <%d>%s' % e for e in entries))
    return ', '.join(seen)


def sandbox(box):
    got = box.echo(b'sandboxed\n')
    if got != b'sandboxed\n':
        raise Failure('sent %r, got %r' % (b'sandboxed\n', got))
    st = box.show('echod.service', 'ActiveState', 'MainPID', 'DynamicUser',
                  'FragmentPath', 'DropInPaths', 'PrivateNetwork')
    pid = st.get('MainPID', '0')
    if st.get('ActiveState') != 'active' or pid == '0':
        raise Failure('echod.service is %s (MainPID %s)' % (st.get('ActiveState'), pid))
    if st.get('DropInPaths'):
        raise Failure('drop-ins change the unit: %s' % st['DropInPaths'])
    status = text(box.cexec('cat', '/proc/%s/status' % pid).stdout)
    fields = dict(line.split(':', 1) for line in status.splitlines() if ':' in line)
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
    ns = box.cexec('readlink', '/proc/1/ns/net', '/proc/%s/ns/net' % pid).stdout.split()
    if len(ns) != 2 or ns[0] == ns[1]:
        problems.append('not in a network namespace of its own (%s)' % ns)
    if problems:
        raise Failure('MainPID %s: %s' % (pid, ', '.join(problems)))
    return ('echo works; MainPID %s runs as dynamic uid %s, CapEff=CapBnd=0, NoNewPrivs=1, '
            'seccomp filter, own network namespace' % (pid, uids[0]))


def watchdog(box):
    dropin = '/run/systemd/system/echod.service.d/50-e2e-watchdog.conf'
    box.cexec('sh', '-c', 'mkdir -p "${0%/*}" && cat > "$0"', dropin,
              input=b'[Service]\nWatchdogSec=%ds\n' % WATCHDOG_SEC)
    box.cexec('systemctl', 'daemon-reload')
    box.cexec('systemctl', 'restart', 'echod.service', timeout=90)
    st = box.show('echod.service', 'ActiveState', 'SubState', 'MainPID', 'NRestarts',
                  'WatchdogUSec')
    if (st['ActiveState'], st['SubState']) != ('active', 'running'):
        raise Failure('after restart with WatchdogSec=%ds: %s/%s'
                      % (WATCHDOG_SEC, st['ActiveState'], st['SubState']))
    if st['WatchdogUSec'] != '%ds' % WATCHDOG_SEC:
        raise Failure('WatchdogUSec=%s' % st['WatchdogUSec'])
    pid, restarts = st['MainPID'], int(st['NRestarts'])
    # Alive under the short watchdog for several periods first.
    time.sleep(3 * WATCHDOG_SEC)
    st = box.show('echod.service', 'MainPID', 'NRestarts')
    if st['MainPID'] != pid or int(st['NRestarts']) != restarts:
        raise Failure('restarted although the loop ran: MainPID %s->%s NRestarts %d->%s'
                      % (pid, st['MainPID'], restarts, st['NRestarts']))
    box.cexec('kill', '-STOP', pid)
    last = {}

    def restarted():
        last.update(box.show('echod.service', 'ActiveState', 'SubState', 'MainPID',
                             'NRestarts'))
        return last['MainPID'] not in ('0', pid) and \
            int(last['NRestarts']) == restarts + 1 and \
            (last['ActiveState'], last['SubState']) == ('active', 'running')

    if not wait_until(restarted, 60, 0.5):
        raise Failure('60 s after SIGSTOP: %s/%s MainPID %s (was %s) NRestarts %s (was %d)'
                      % (last.get('ActiveState'), last.get('SubState'),
                         last.get('MainPID'), pid, last.get('NRestarts'), restarts))
    timeouts = box.systemd_journal(r'[Ww]atchdog timeout')
    if not timeouts:
        raise Failure('restarted, but systemd logged no watchdog timeout')
    got = box.echo(b'after the watchdog\n')
    if got != b'after the watchdog\n':
        raise Failure('after the restart, got %r' % got)
    return 'MainPID %s -> %s, NRestarts %d -> %s, %r; echo works' % (
        pid, last['MainPID'], restarts, last['NRestarts'], timeouts[-1].strip())
