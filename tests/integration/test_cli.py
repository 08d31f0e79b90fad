#!/usr/bin/env python3
"""Command line and config file: -t output, precedence, and every exit code
of the contract (0, 1, 2, 78) with its message."""

import os
import re
import socket
import tempfile

import harness
from harness import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, check, fail

LONG_OPTIONS = ["--config", "--listen", "--backlog", "--buffer-size", "--max-connections",
                "--idle-timeout", "--transform", "--log-level", "--check-config", "--help",
                "--version"]
KEY_ORDER = ["listen", "backlog", "buffer_size", "max_connections", "idle_timeout",
             "shutdown_timeout", "transform", "reuse_port", "log_level"]

_tmp = tempfile.TemporaryDirectory(prefix="echod-it-cli-")


def conf(text, name="echod.conf"):
    path = os.path.join(_tmp.name, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def run(args, timeout=15):
    return harness.run(args, timeout=timeout)


def expect_rc(r, rc, what):
    check(r.rc == rc, what, "exit status %d" % rc, r.describe())


def check_t(config_text, args, expected_lines, what):
    r = run(["-c", conf(config_text), "-t"] + list(args))
    expect_rc(r, EXIT_OK, what)
    lines = r.stdout.splitlines()
    check(lines == expected_lines, what, "\n" + "\n".join(expected_lines), "\n" + r.stdout)


def default_listen():
    return ["[::]:7"] if harness.have_ipv6_loopback() else ["[::]:7", "0.0.0.0:7"]


def parse_t(stdout):
    out = []
    for line in stdout.splitlines():
        m = re.match(r"^(\w+) = (.*)$", line)
        if not m:
            fail("-t output is `key = value` lines", "key = value", repr(line))
        out.append((m.group(1), m.group(2)))
    return out


# ---------------------------------------------------------------- exit 0

@harness.case()
def help_option():
    """-h and --help: exit 0, every long option listed on stdout."""
    for opt in ("-h", "--help"):
        r = run([opt])
        expect_rc(r, EXIT_OK, "echod %s" % opt)
        missing = [o for o in LONG_OPTIONS if o not in r.stdout]
        check(not missing, "echod %s lists every long option" % opt, LONG_OPTIONS,
              "missing %s in:\n%s" % (missing, r.stdout))


@harness.case()
def version_option():
    """-V and --version: exit 0, `echod VERSION` on stdout."""
    version = os.environ.get("ECHOD_VERSION")
    for opt in ("-V", "--version"):
        r = run([opt])
        expect_rc(r, EXIT_OK, "echod %s" % opt)
        first = r.stdout.splitlines()[0] if r.stdout else ""
        if version:
            check(first == "echod " + version, "echod %s output" % opt, "echod " + version, r.stdout)
        else:
            check(re.match(r"^echod \d+\.\d+\S*$", first), "echod %s output" % opt,
                  "echod VERSION", r.stdout)


@harness.case()
def check_config_defaults():
    """-t with an empty file: every key, in order, with the contract's defaults."""
    r = run(["-c", conf(""), "-t"])
    expect_rc(r, EXIT_OK, "echod -t with an empty config file")
    got = parse_t(r.stdout)
    check([k for k, _ in got] == KEY_ORDER, "keys printed by -t, in order", KEY_ORDER,
          [k for k, _ in got])
    values = dict(got)
    check(values["listen"] in default_listen(), "default listen", default_listen(), values["listen"])
    expected = {"backlog": "4096", "buffer_size": "16K", "max_connections": "0",
                "idle_timeout": "0", "shutdown_timeout": "5s", "transform": "none",
                "reuse_port": "no", "log_level": "info"}
    for k, v in expected.items():
        check(values[k] == v, "default %s printed by -t" % k, v, values[k])


@harness.case()
def check_config_missing_default():
    """No -c and no file at the default path: built-in defaults, exit 0."""
    path = os.environ.get("ECHOD_DEFAULT_CONFIG")
    if not path:
        raise harness.Skip("ECHOD_DEFAULT_CONFIG (the built-in config path) is not set")
    if os.path.exists(path):
        raise harness.Skip("%s exists on this machine" % path)
    r = run(["-t"])
    expect_rc(r, EXIT_OK, "echod -t without -c and without %s" % path)
    got = dict(parse_t(r.stdout))
    check(got.get("backlog") == "4096" and got.get("buffer_size") == "16K",
          "built-in defaults when the default file is missing", "backlog = 4096, buffer_size = 16K",
          r.stdout)


@harness.case()
def check_config_every_key():
    """A file setting every key: -t prints exactly those values, in order."""
    text = """# every key
listen = 127.0.0.1:7001
listen = udp:[::1]:7002
listen = unix:/run/echod.sock
backlog = 128
buffer_size = 64K
max_connections = 1000
idle_timeout = 2min
shutdown_timeout = 250ms
transform = upper
reuse_port = yes
log_level = debug
"""
    check_t(text, [], [line for line in text.splitlines() if not line.startswith("#")],
            "-t with every key set in the file")


@harness.case()
def check_config_precedence():
    """command line > file > default; -l replaces the file's whole listen list."""
    text = "listen = 127.0.0.1:9000\nlisten = 127.0.0.1:9001\nbacklog = 100\nbuffer_size = 1M\n" \
           "transform = upper\nidle_timeout = 5s\nlog_level = warning\n"
    args = ["-l", "127.0.0.1:9100", "--listen=[::1]:9101", "-b", "200", "-T", "none",
            "--idle-timeout=250ms", "-m", "7", "--log-level=debug"]
    check_t(text, args, [
        "listen = 127.0.0.1:9100",
        "listen = [::1]:9101",
        "backlog = 200",            # command line over file
        "buffer_size = 1M",         # file over default
        "max_connections = 7",      # command line over default
        "idle_timeout = 250ms",
        "shutdown_timeout = 5s",    # default
        "transform = none",
        "reuse_port = no",
        "log_level = debug",
    ], "-t with file and command line")
    # Long forms and -B/-i/-m/-T with the file alone.
    check_t(text, ["--buffer-size=2M", "--max-connections=3", "--transform=upper",
                   "--backlog=5", "--idle-timeout=0"], [
        "listen = 127.0.0.1:9000",
        "listen = 127.0.0.1:9001",
        "backlog = 5",
        "buffer_size = 2M",
        "max_connections = 3",
        "idle_timeout = 0",
        "shutdown_timeout = 5s",
        "transform = upper",
        "reuse_port = no",
        "log_level = warning",
    ], "-t with long options over the file")


@harness.case(timeout=120)
def check_config_formats():
    """Sizes print as 16K/1M, durations as 0/5s/250ms/2min; booleans as yes/no."""
    cases = [
        ("buffer_size", "1024", "1K"), ("buffer_size", "65536", "64K"), ("buffer_size", "1M", "1M"),
        ("buffer_size", "1048576", "1M"), ("buffer_size", "100", "100"), ("buffer_size", "64", "64"),
        ("buffer_size", "2048K", "2M"),
        ("idle_timeout", "250ms", "250ms"), ("idle_timeout", "2min", "2min"),
        ("idle_timeout", "120", "2min"), ("idle_timeout", "5", "5s"), ("idle_timeout", "5s", "5s"),
        ("idle_timeout", "0", "0"), ("idle_timeout", "1500ms", "1500ms"),
        ("idle_timeout", "3000ms", "3s"), ("shutdown_timeout", "0", "0"),
    ]
    for v in ("yes", "true", "on", "1"):
        cases.append(("reuse_port", v, "yes"))
    for v in ("no", "false", "off", "0"):
        cases.append(("reuse_port", v, "no"))
    for lvl in ("err", "warning", "notice", "info", "debug"):
        cases.append(("log_level", lvl, lvl))
    for key, value, printed in cases:
        r = run(["-c", conf("%s = %s\n" % (key, value)), "-t"])
        expect_rc(r, EXIT_OK, "-t with `%s = %s`" % (key, value))
        got = dict(parse_t(r.stdout)).get(key)
        check(got == printed, "-t prints `%s = %s` as" % (key, value), printed, got)


@harness.case()
def check_config_syntax():
    """Comments (# and ;), blank lines, surrounding white space; listen may repeat."""
    text = "# comment\n; another comment\n\n   \n\tbacklog\t=\t77  \n  buffer_size=2K\n" \
           "listen = 127.0.0.1:1\nlisten = 127.0.0.1:2\n  # indented comment\n"
    r = run(["-c", conf(text), "-t"])
    expect_rc(r, EXIT_OK, "-t with comments, blank lines and white space")
    got = parse_t(r.stdout)
    check(("backlog", "77") in got and ("buffer_size", "2K") in got,
          "values read around comments and white space", "backlog = 77, buffer_size = 2K", r.stdout)
    listens = [v for k, v in got if k == "listen"]
    check(listens == ["127.0.0.1:1", "127.0.0.1:2"], "repeated listen", ["127.0.0.1:1", "127.0.0.1:2"],
          listens)


@harness.case()
def check_config_bounds():
    """The bounds themselves are accepted."""
    for key, value in [("backlog", "1"), ("backlog", "65535"), ("buffer_size", "64"),
                       ("buffer_size", "64M"), ("max_connections", "0"),
                       ("max_connections", "10000000")]:
        r = run(["-c", conf("%s = %s\n" % (key, value)), "-t"])
        expect_rc(r, EXIT_OK, "-t with `%s = %s` (a bound of the range)" % (key, value))


@harness.case()
def check_config_roundtrip():
    """-t output is itself a valid config file that reads back the same."""
    text = "listen = 127.0.0.1:7001\nlisten = unix:/tmp/x.sock\nbuffer_size = 1000\n" \
           "idle_timeout = 90s\nshutdown_timeout = 1500ms\nreuse_port = on\ntransform = upper\n"
    r1 = run(["-c", conf(text), "-t"])
    expect_rc(r1, EXIT_OK, "-t")
    r2 = run(["-c", conf(r1.stdout, "roundtrip.conf"), "-t"])
    expect_rc(r2, EXIT_OK, "-t on the output of -t")
    check(r1.stdout == r2.stdout, "-t output read back by -t", r1.stdout, r2.stdout)


# ---------------------------------------------------------------- exit 2

def _usage_error(args, what, mention=None):
    r = run(["-c", conf("")] + args)
    expect_rc(r, EXIT_USAGE, what)
    check(r.stderr.startswith("echod: "), what + ": message on stderr", "echod: ...", r.stderr)
    if mention:
        check(any(m in r.stderr for m in mention), what + ": message names the cause",
              "one of %s" % (mention,), r.stderr)
    check(r.stdout == "", what + ": nothing on stdout", "", r.stdout)


@harness.case()
def usage_unknown_option():
    """Unknown options exit 2."""
    for args in (["--bogus"], ["-Z"], ["--check-config=yes"], ["-t", "--no-such-thing"]):
        _usage_error(args, "echod %s" % " ".join(args))


@harness.case(timeout=120)
def usage_bad_value():
    """A bad value given to an option exits 2 (not 78: it is not the file)."""
    bad = [
        ("-b", "0"), ("-b", "65536"), ("-b", "abc"), ("-b", "-5"), ("-b", ""), ("--backlog", "1e3"),
        ("-B", "63"), ("-B", "65M"), ("-B", "1G"), ("-B", "12x"), ("--buffer-size", ""),
        ("-m", "10000001"), ("-m", "-1"), ("--max-connections", "many"),
        ("-i", "5h"), ("-i", "ms"), ("-i", "-1"), ("--idle-timeout", "1.5s"),
        ("-T", "lower"), ("--transform", ""),
        ("--log-level", "loud"), ("--log-level", ""),
        ("-l", ""), ("-l", "nowhere"), ("-l", "127.0.0.1:65536"), ("-l", "127.0.0.1:"),
        ("-l", "[::1:7"), ("-l", "1.2.3.4.5:7"), ("-l", "udp:"), ("-l", "unix:"),
    ]
    for opt, value in bad:
        args = (["%s=%s" % (opt, value)] if opt.startswith("--") else [opt, value]) + ["-t"]
        # The message names the option or its key, or quotes the value.
        knob = {"-b": "backlog", "-B": "buffer", "-m": "max", "-i": "idle", "-T": "transform",
                "-l": "listen"}.get(opt, opt.lstrip("-").split("-")[0])
        mention = [knob] + ([value] if len(value) >= 2 else [])
        _usage_error(args, "echod %s" % " ".join(repr(a) for a in args), mention)


@harness.case()
def usage_stray_argument():
    """A non-option argument exits 2."""
    for args in (["-t", "foo"], ["stray"], ["-t", "--", "x"]):
        _usage_error(args, "echod %s" % " ".join(args))


@harness.case()
def usage_missing_argument():
    """An option missing its argument exits 2."""
    for args in (["-t", "-l"], ["-t", "--config"], ["-t", "-b"], ["-t", "--transform"]):
        _usage_error(args, "echod %s" % " ".join(args))


# ---------------------------------------------------------------- exit 78

def _config_error(text, line, what, start=False):
    path = conf(text, "bad.conf")
    args = ["-c", path] + (["-l", "127.0.0.1:0"] if start else ["-t"])
    r = run(args, timeout=20)
    expect_rc(r, EXIT_CONFIG, what)
    prefix = "echod: %s:%d: " % (path, line)
    check(any(line.startswith(prefix) for line in r.stderr.splitlines()), what + ": error message",
          prefix + "...", r.stderr)
    check(r.stdout == "", what + ": nothing on stdout", "", r.stdout)


@harness.case(timeout=90)
def config_unknown_key():
    """An unknown key: exit 78, `echod: FILE:LINE: ...`."""
    _config_error("# comment\n\ncolour = blue\n", 3, "unknown key on line 3")
    _config_error("backlog = 10\nBacklog = 10\n", 2, "key with the wrong case on line 2")
    _config_error("backlog 100\n", 1, "line without `=`")
    _config_error("= 100\n", 1, "line without a key")


@harness.case()
def config_repeated_key():
    """A repeated scalar key: exit 78 on the line that repeats it."""
    _config_error("backlog = 10\nbacklog = 20\n", 2, "backlog repeated on line 2")
    _config_error("transform = upper\n\n# same value\ntransform = upper\n", 4,
                  "transform repeated with the same value on line 4")


@harness.case(timeout=120)
def config_bad_value():
    """A malformed value: exit 78 on its line."""
    for key, value in [("buffer_size", "lots"), ("buffer_size", "16KB"), ("backlog", "1x"),
                       ("backlog", ""), ("backlog", "-1"), ("transform", "sideways"),
                       ("idle_timeout", "5 parsecs"),
                       ("idle_timeout", "1h"), ("shutdown_timeout", "soon"),
                       ("listen", "nowhere"), ("listen", "127.0.0.1:99999"), ("log_level", "loud"),
                       ("max_connections", "1.5")]:
        _config_error("# line 1\n%s = %s\n" % (key, value), 2, "`%s = %s` on line 2" % (key, value))


@harness.case()
def config_bad_boolean():
    """A malformed boolean (reuse_port): exit 78 on its line, no undefined behaviour."""
    for value in ("maybe", "2", "yess", "nope", "-1"):
        _config_error("# line 1\nreuse_port = %s\n" % value, 2, "`reuse_port = %s` on line 2" % value)


@harness.case(timeout=90)
def config_out_of_range():
    """A value out of range: exit 78 on its line."""
    for key, value in [("backlog", "0"), ("backlog", "65536"), ("buffer_size", "63"),
                       ("buffer_size", "65M"), ("buffer_size", "67108865"),
                       ("max_connections", "10000001"), ("buffer_size", "99999999999999999999999")]:
        _config_error("# line 1\n\n%s = %s\n" % (key, value), 3, "`%s = %s` on line 3" % (key, value))


@harness.case(timeout=90)
def config_missing_file():
    """A missing named config file: exit 78, naming the file; also when starting."""
    path = os.path.join(_tmp.name, "does-not-exist.conf")
    for args in (["-c", path, "-t"], ["-c", path, "-l", "127.0.0.1:0"], ["--config=" + path, "-t"]):
        r = run(args, timeout=20)
        expect_rc(r, EXIT_CONFIG, "echod %s" % " ".join(args))
        check(r.stderr.startswith("echod: ") and path in r.stderr,
              "echod %s: message names the file" % " ".join(args), "echod: ... %s ..." % path, r.stderr)


@harness.case(timeout=90)
def config_error_on_start():
    """A bad file stops the daemon from starting (78), not only -t."""
    _config_error("backlog = 100\nno_such_key = 1\n", 2, "unknown key when starting", start=True)
    _config_error("buffer_size = 1\n", 1, "value out of range when starting", start=True)


# ---------------------------------------------------------------- exit 1

@harness.case()
def runtime_address_in_use():
    """A TCP port already bound and listening: exit 1, the message names the cause."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        addr = "127.0.0.1:%d" % port
        r = run(["-c", conf(""), "-l", addr], timeout=20)
        expect_rc(r, EXIT_FAILURE, "echod -l %s (port in use)" % addr)
        check(str(port) in r.stderr and re.search(r"(?i)in use", r.stderr),
              "message for a port in use", "echod: ... %s ... Address already in use" % addr, r.stderr)


@harness.case()
def runtime_udp_address_in_use():
    """A UDP port already bound: exit 1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        addr = "udp:127.0.0.1:%d" % port
        r = run(["-c", conf(""), "-l", addr], timeout=20)
        expect_rc(r, EXIT_FAILURE, "echod -l %s (port in use)" % addr)
        check(str(port) in r.stderr, "message names the address", addr, r.stderr)


if __name__ == "__main__":
    harness.main()
