#!/usr/bin/env python3
"""The unit files: systemd-analyze verify passes on each, and
systemd-analyze security rates the services at an exposure of 1.0 or lower.

Usage: test_units.py verify|security UNIT... [MANPAGE...]
The units are the configured ones (as installed); their ExecStart= and
ExecReload= commands are pointed at the built echod ($ECHOD), since
verify requires the binaries to exist. Man pages (*.5, *.8) given are put on MANPATH so that verify also
checks that every Documentation=man: page resolves to ours.
"""

import os
import re
import shutil
import subprocess

import sdtest
from sdtest import check, fail

MAX_EXPOSURE = 1.0


def prepare(args):
    """Copies the units into a temporary directory with ExecStart= on the
    built binary; returns (unit dir, unit names, man dir or None)."""
    echod = sdtest.echod_path()
    units = [a for a in args if not re.search(r"\.[0-9]$", a)]
    pages = [a for a in args if re.search(r"\.[0-9]$", a)]
    check(units, "no unit files given")
    unitdir = os.path.join(sdtest.tmpdir(), "units")
    os.makedirs(unitdir)
    names = []
    for path in units:
        with open(path) as f:
            text = f.read()
        check("@sbindir@" not in text, "%s: @sbindir@ was not substituted" % path)
        if path.endswith(".service"):
            starts = re.findall(r"^ExecStart=[-@:+!]*(\S+)", text, flags=re.M)
            check(len(starts) == 1 and starts[0].endswith("/sbin/echod"),
                  "%s: expected one ExecStart= running .../sbin/echod, found %s" % (path, starts))
            # A reload checks the file before signalling the daemon, so
            # that 'systemctl reload' fails on a broken one.
            reloads = re.findall(r"^ExecReload=(.*)$", text, flags=re.M)
            check(len(reloads) == 2 and reloads[0] == starts[0] + " -t -q"
                  and "kill -HUP $MAINPID" in reloads[1],
                  "%s: expected ExecReload= '%s -t -q' then the kill, found %s"
                  % (path, starts[0], reloads))
        text = re.sub(r"^(Exec[A-Za-z]+=[-@:+!]*)\S+/echod\b", r"\g<1>" + echod, text, flags=re.M)
        name = os.path.basename(path)
        with open(os.path.join(unitdir, name), "w") as f:
            f.write(text)
        names.append(name)
    mandir = None
    if pages:
        mandir = os.path.join(sdtest.tmpdir(), "man")
        for page in pages:
            section = page.rsplit(".", 1)[1]
            os.makedirs(os.path.join(mandir, "man" + section), exist_ok=True)
            shutil.copy(page, os.path.join(mandir, "man" + section))
    return unitdir, names, mandir


def analyze(argv, cwd, env=None):
    full_env = dict(os.environ)
    full_env.update(env or {})
    full_env["SYSTEMD_PAGER"] = "cat"
    full_env["SYSTEMD_COLORS"] = "0"
    p = subprocess.run(argv, cwd=cwd, env=full_env, stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=sdtest.TIMEOUT * 4)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


@sdtest.case(timeout=120)
def case_verify(*args):
    tool = sdtest.need_tool("systemd-analyze")
    unitdir, names, mandir = prepare(args)
    env = {}
    cmd = [tool, "verify"]
    if mandir and shutil.which("man"):
        env["MANPATH"] = mandir
    else:
        cmd.append("--man=no")
    paths = [os.path.join(unitdir, n) for n in names]
    # verify warns about unknown keys and the like but still exits 0:
    # any output at all is a failure.
    for path in paths:
        code, out, err = analyze(cmd + [path], unitdir, env)
        print("systemd-analyze verify %s: exit %d" % (os.path.basename(path), code))
        check(code == 0 and not out.strip() and not err.strip(),
              "systemd-analyze verify %s: exit %d\n%s%s" % (os.path.basename(path), code, out, err))
    code, out, err = analyze(cmd + paths, unitdir, env)
    check(code == 0 and not out.strip() and not err.strip(),
          "systemd-analyze verify (all units together): exit %d\n%s%s" % (code, out, err))


@sdtest.case(timeout=120)
def case_security(*args):
    tool = sdtest.need_tool("systemd-analyze")
    unitdir, names, _ = prepare(args)
    services = [n for n in names if n.endswith(".service")]
    check(services, "no service units given")
    for name in services:
        code, out, err = analyze([tool, "security", "--offline=true", "--no-pager", name], unitdir)
        m = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", out)
        if not m:
            fail("systemd-analyze security %s: no exposure figure (exit %d)\n%s%s"
                 % (name, code, out, err))
        exposure = float(m.group(1))
        weak = [line.rstrip() for line in out.splitlines() if line.startswith("\u2717")]
        print("%s: exposure %.1f" % (name, exposure))
        for line in weak:
            print("  " + re.sub(r"\s{2,}", "  ", line))
        check(exposure <= MAX_EXPOSURE, "%s: exposure %.1f is above %.1f"
              % (name, exposure, MAX_EXPOSURE))


if __name__ == "__main__":
    sdtest.run_cases()
