#!/usr/bin/env python3
"""The man pages: they render without warnings, and they agree with the
code on every option, every key, every default and every bound.

Usage: test_man.py lint|options|keys|bounds ECHOD.8 ECHOD.CONF.5
"""

import os
import re
import shutil
import subprocess

import sdtest
from sdtest import check


def run(argv, **kw):
    return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=sdtest.TIMEOUT * 2, **kw)


def pages(args):
    check(len(args) == 2, "expected the paths of echod.8 and echod.conf.5")
    section8, section5 = args
    check(section8.endswith(".8") and section5.endswith(".5"),
          "expected echod.8 then echod.conf.5, got %s" % (args,))
    return section8, section5


def plain(path):
    """The roff source as text: escapes for '-' and fonts removed."""
    with open(path) as f:
        text = f.read()
    text = text.replace("\\-", "-").replace("\\(aq", "'")
    text = re.sub(r"\\f[BIRP]", "", text)
    text = re.sub(r"^\.(?:BI|IB|BR|RB|IR|RI|TP|IP|OP|B|I)(?: |$)", "", text, flags=re.M)
    return text.replace('"', "")


def echod(*args):
    p = run([sdtest.echod_path()] + list(args))
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


@sdtest.case(timeout=120)
def case_lint(*args):
    mandoc = sdtest.need_tool("mandoc")
    for page in pages(args):
        p = run([mandoc, "-Tlint", "-W", "warning", page])
        out = (p.stdout + p.stderr).decode(errors="replace").strip()
        print("mandoc -Tlint -W warning %s: exit %d" % (os.path.basename(page), p.returncode))
        check(p.returncode == 0 and not out, "mandoc -Tlint %s:\n%s" % (page, out))
        groff = shutil.which("groff")
        if groff:
            p = run([groff, "-man", "-ww", "-z", page])
            out = (p.stdout + p.stderr).decode(errors="replace").strip()
            print("groff -man -ww -z %s: exit %d" % (os.path.basename(page), p.returncode))
            check(p.returncode == 0 and not out, "groff -ww -z %s:\n%s" % (page, out))
        else:
            print("groff is not installed; checked with mandoc only")


@sdtest.case(timeout=120)
def case_options(*args):
    """Every option echod --help lists is in echod(8), with its short form."""
    man8 = plain(pages(args)[0])
    code, out, err = echod("--help")
    check(code == 0, "echod --help exited %d:\n%s" % (code, err))
    longs = sorted(set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out)))
    check(len(longs) >= 10, "echod --help lists only %s" % longs)
    for opt in longs:
        check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), man8),
              "echod(8) does not document %s (from echod --help)" % opt)
    shorts = sorted(set(re.findall(r"(?<![\w-])-[a-zA-Z](?![\w-])", out)))
    for opt in shorts:
        check(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), man8),
              "echod(8) does not document %s (from echod --help)" % opt)
    code, out, err = echod("--version")
    check(code == 0 and re.fullmatch(r"echod \S+\n(?:features: [-+]\S+(?: [-+]\S+)*\n)?", out),
          "echod --version: exit %d, printed %r" % (code, out))
    print("options in echod --help, all in echod(8): %s" % " ".join(shorts + longs))


def defaults():
    """echod -t with an empty file: [(key, value)] in echod's order; a key
    with no value (`# allow =`) as (key, None)."""
    conf = sdtest.write_config("")
    code, out, err = echod("-c", conf, "-t")
    check(code == 0, "echod -t exited %d:\n%s" % (code, err))
    pairs = []
    for line in out.splitlines():
        m = re.fullmatch(r"([a-z_]+) = (.*)", line)
        e = re.fullmatch(r"# ([a-z_]+) =", line)
        check(m is not None or e is not None,
              "echod -t printed %r, not 'key = value' or '# key ='" % line)
        pairs.append((m.group(1), m.group(2)) if m else (e.group(1), None))
    check(len(pairs) >= 9, "echod -t printed only %d keys" % len(pairs))
    return pairs


def printed(key, value):
    return "# %s =" % key if value is None else "%s = %s" % (key, value)


def by_key(pairs):
    """{key: [values]} in echod's order: a list key prints a line per entry."""
    out = {}
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


@sdtest.case(timeout=120)
def case_keys(*args):
    """Every key of echod -t is in both pages, and echod.conf(5) states its
    default as echod -t prints it."""
    man8_path, man5_path = pages(args)
    man5 = plain(man5_path)
    with open(man5_path) as f:
        raw5 = f.read()
    pairs = defaults()
    keys = list(by_key(pairs))
    for key, values in by_key(pairs).items():
        section = re.search(r"^%s =[^\n]*\n(.*?)(?=^\S+ =|^\.SH)" % re.escape(key), man5, re.M | re.S)
        check(section is not None, "echod.conf(5) has no entry for the key %s" % key)
        text = re.sub(r"\s+", " ", section.group(1))
        # No value: "Default: none"; a list: "Default: A and B".
        value = "none" if values == [None] else " and ".join(values)
        check(re.search(r"Default: %s(?:[ .]|$)" % re.escape(value), text),
              "echod.conf(5) does not give %s's default as %r (echod -t prints that)"
              % (key, value))
    # The example of all defaults is what echod -t prints, line for line.
    block = "\n".join(printed(k, v) for k, v in pairs)
    check(block in raw5.replace("\\-", "-"),
          "echod.conf(5) lacks the block of all defaults as echod -t prints them:\n" + block)
    man8 = plain(man8_path)
    for key in keys:
        check(re.search(r"(?<![\w-])%s(?![\w-])" % key, man8),
              "echod(8) does not mention the key %s" % key)
    print("keys of echod -t, all in the man pages with their defaults: %s" % " ".join(keys))


def bump(value, delta):
    """value (a man-page bound: 64M, 43200min, 65535) plus delta of its
    smallest unit, in that unit."""
    m = re.fullmatch(r"(\d+)(K|M|ms|s|min)?", value)
    check(m is not None, "cannot read the bound %r" % value)
    n, unit = int(m.group(1)), m.group(2)
    scale = {None: 1, "K": 1024, "M": 1024 * 1024, "ms": 1, "s": 1000, "min": 60000}[unit]
    base = n * scale + delta
    if unit in ("ms", "s", "min"):
        return "%dms" % base
    return "%d" % base


@sdtest.case(timeout=120)
def case_bounds(*args):
    """The bounds echod.conf(5) states are those echod enforces: each bound
    is accepted, one step beyond it is refused with exit 78."""
    man5 = plain(pages(args)[1])
    checked = 0
    for key in by_key(defaults()):
        section = re.search(r"^%s =[^\n]*\n(.*?)(?=^\S+ =|^\.SH)" % re.escape(key), man5, re.M | re.S)
        check(section is not None, "echod.conf(5) has no entry for the key %s" % key)
        m = re.search(r"(?<![\w.])(\d+[A-Za-z]*) to (\d+[A-Za-z]*)(?![\w])",
                      re.sub(r"\s+", " ", section.group(1)))
        if not m:
            continue
        lo, hi = m.group(1), m.group(2)
        cases = [(lo, 0), (hi, 0), (bump(hi, 1), 78)]
        if not re.fullmatch(r"0[A-Za-z]*", lo):
            cases.append((bump(lo, -1), 78))
        for value, want in cases:
            conf = sdtest.write_config("%s = %s\n" % (key, value), "bounds.conf")
            code, out, err = echod("-c", conf, "-t")
            check(code == want, "%s = %s (bounds %s to %s in echod.conf(5)): echod -t exited %d, "
                  "expected %d\n%s" % (key, value, lo, hi, code, want, err))
            if want == 78:
                check(re.search(r"^echod: %s:1: " % re.escape(conf), err, re.M),
                      "%s = %s: the error is not reported as 'echod: FILE:1: ...':\n%s"
                      % (key, value, err))
        print("%s: %s to %s, as echod enforces" % (key, lo, hi))
        checked += 1
    check(checked >= 5, "found bounds for only %d keys in echod.conf(5)" % checked)


if __name__ == "__main__":
    sdtest.run_cases()
