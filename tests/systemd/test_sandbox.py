#!/usr/bin/env python3
"""echod fits the sandbox of echod.service: through a whole socket-activated
life (TCP and UDP echo, a reset, SIGUSR1, SIGHUP with a good and a bad file,
the watchdog, SIGTERM with a connection open) it makes only system calls
that the unit's SystemCallFilter= allows and opens sockets only of the
families that RestrictAddressFamilies= allows. Traced with strace.

Usage: test_sandbox.py syscalls UNIT... (echod.service among them)
"""

import os
import re
import signal
import socket
import subprocess

import sdtest
from sdtest import check


def expand(analyze, name, seen):
    """A system call or @group, as a set of system call names."""
    if not name.startswith("@"):
        return {name}
    if name in seen:
        return set()
    seen.add(name)
    p = subprocess.run([analyze, "syscall-filter", "--no-pager", name], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=sdtest.TIMEOUT)
    check(p.returncode == 0, "systemd-analyze syscall-filter %s failed:\n%s"
          % (name, p.stderr.decode(errors="replace")))
    out = set()
    for line in p.stdout.decode().splitlines():
        item = line.strip()
        if not item or item.startswith("#") or item == name:
            continue
        out |= expand(analyze, item, seen)
    return out


def unit_settings(path, key):
    with open(path) as f:
        return [m.group(1).strip() for m in re.finditer(r"^%s=(.*)$" % key, f.read(), re.M)]


def allowed_syscalls(analyze, service):
    allowed = None
    filters = unit_settings(service, "SystemCallFilter")
    check(filters, "%s sets no SystemCallFilter=" % service)
    for value in filters:
        deny = value.startswith("~")
        names = value.lstrip("~").split()
        calls = set()
        for n in names:
            calls |= expand(analyze, n, set())
        if allowed is None:
            check(not deny, "the first SystemCallFilter= of %s is a deny list; this test "
                  "expects an allow list" % service)
            allowed = calls
        elif deny:
            allowed -= calls
        else:
            allowed |= calls
    return allowed


def allowed_families(service):
    values = unit_settings(service, "RestrictAddressFamilies")
    check(values and not values[0].startswith("~"),
          "%s sets no allow list in RestrictAddressFamilies=" % service)
    return set(" ".join(values).split())


@sdtest.case(timeout=180)
@sdtest.needs_systemd
def case_syscalls(*units):
    services = [u for u in units if os.path.basename(u) == "echod.service"]
    check(len(services) == 1, "echod.service is not among %s" % (units,))
    service = services[0]
    if os.environ.get("ECHOD_SANITIZED", "0") == "1":
        sdtest.skip("sanitizer runtimes make system calls of their own; "
                    "this check needs a plain build")
    strace = sdtest.need_tool("strace")
    analyze = sdtest.need_tool("systemd-analyze")
    allowed = allowed_syscalls(analyze, service)
    families = allowed_families(service)

    trace = os.path.join(sdtest.tmpdir(), "strace.out")
    notify = sdtest.Notify()
    tcp = sdtest.listening_socket("127.0.0.1")
    udp = sdtest.listening_socket("127.0.0.1", socket.SOCK_DGRAM)
    conf = sdtest.write_config("idle_timeout = 1min\n")
    # The shell sets LISTEN_PID to its own pid, which echod keeps on exec.
    argv = [strace, "-f", "-qq", "-o", trace, "/bin/sh", "-c", 'LISTEN_PID=$$ exec "$@"', "sh",
            sdtest.echod_path(), "-c", conf, "--log-level=debug"]
    env = dict(notify.env())
    env.update({"LISTEN_FDS": "2", "WATCHDOG_USEC": "200000"})
    proc = sdtest.spawn(argv, env=env, fds=[tcp, udp], what="echod under strace")
    _, msg = notify.wait_for(r"READY=1", proc=proc)
    pid = msg[0]
    check(pid is not None and pid != proc.pid, "cannot tell echod's pid from its READY=1")

    sdtest.check_tcp_echo(tcp.getsockname())
    sdtest.check_udp_echo(udp.getsockname())
    held = socket.create_connection(tcp.getsockname(), timeout=sdtest.TIMEOUT)
    held.sendall(b"held")
    check(held.recv(16) == b"held", "echo on the held connection")
    reset = socket.create_connection(tcp.getsockname(), timeout=sdtest.TIMEOUT)
    reset.sendall(b"x")
    reset.recv(1)
    reset.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    reset.close()
    os.kill(pid, signal.SIGUSR1)
    proc.wait_stderr(r"echod: stats: ")
    os.kill(pid, signal.SIGHUP)
    notify.wait_for(r"RELOADING=1", proc=proc)
    notify.wait_for(r"READY=1", proc=proc)
    sdtest.write_config("idle_timeout = soon\n")
    os.kill(pid, signal.SIGHUP)
    notify.wait_for(r"RELOADING=1", proc=proc)
    notify.wait_for(r"READY=1", proc=proc)
    notify.wait_for(r"WATCHDOG=1", proc=proc)
    notify.wait_for(r"WATCHDOG=1", proc=proc)
    os.kill(pid, signal.SIGTERM)
    notify.wait_for(r"STOPPING=1", proc=proc)
    held.close()
    code = proc.wait()
    check(code == 0, "echod under strace exited %s; stderr:\n%s" % (code, proc.stderr_text()))

    used, sockets, started = {}, [], False
    with open(trace) as f:
        for line in f:
            m = re.match(r"(\d+) +([a-z_0-9]+)\((.*)", line)
            if not m or int(m.group(1)) != pid:
                continue
            name, rest = m.group(2), m.group(3)
            if not started:
                # The shell's own calls do not count; echod starts at its execve.
                started = name == "execve" and sdtest.echod_path() in rest and "= 0" in rest
                continue
            used.setdefault(name, line.strip())
            if name == "socket":
                sockets.append(rest.split(",")[0])
    check(started, "no execve of echod in the trace")
    print("echod made %d kinds of system call: %s" % (len(used), " ".join(sorted(used))))
    bad = sorted(set(used) - allowed)
    check(not bad, "echod makes system calls that echod.service's SystemCallFilter= "
          "forbids: %s\n%s" % (bad, "\n".join(used[b] for b in bad)))
    bad_families = sorted(set(sockets) - families)
    check(not bad_families, "echod opens sockets of families echod.service's "
          "RestrictAddressFamilies= forbids: %s" % bad_families)


if __name__ == "__main__":
    sdtest.run_cases()
