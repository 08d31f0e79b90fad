#!/usr/bin/env python3
"""Command line and config file: -t output, precedence, and every exit code
of the contract (0, 1, 2, 78) with its message; the config file errors
(78) are in test_cli_config.py."""

import os
import re
import socket
import tempfile

import harness
from harness import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, check, fail

LONG_OPTIONS = ["--config", "--listen", "--backlog", "--buffer-size", "--max-connections",
                "--idle-timeout", "--transform", "--log-level", "--allow", "--deny",
                "--check-config", "--quiet", "--help", "--version"]
KEY_ORDER = ["listen", "backlog", "buffer_size", "max_connections", "idle_timeout",
             "shutdown_timeout", "transform", "reuse_port", "log_level",
             "allow", "deny", "max_connections_per_source", "max_connection_time",
             "udp_rate_per_source", "proxy_trusted", "proxy_trusted", "metrics", "defer_accept",
             "tcp_keepalive", "free_bind", "unix_mode", "unix_group", "log_connections"]
# What -t prints for the keys of contract v2 when none is set.
V2_DEFAULTS = ["# allow =", "# deny =", "max_connections_per_source = 0",
               "max_connection_time = 0", "udp_rate_per_source = 0",
               "proxy_trusted = 127.0.0.0/8", "proxy_trusted = ::1", "# metrics =",
               "defer_accept = 1s", "tcp_keepalive = 1min", "free_bind = no", "unix_mode = 0666",
               "# unix_group =", "log_connections = no"]

_tmp = tempfile.TemporaryDirectory(prefix="echod-it-cli-")


def conf(text, name="echod.conf"):
    """Writes a config file (text, or bytes as they are); returns its path."""
    path = os.path.join(_tmp.name, name)
    with open(path, "wb" if isinstance(text, bytes) else "w") as f:
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
    """-t output as [(key, value)]; a key with no value (`# allow =`) as (key, None)."""
    out = []
    for line in stdout.splitlines():
        m = re.match(r"^(\w+) = (.*)$", line)
        e = re.match(r"^# (\w+) =$", line)
        if not m and not e:
            fail("-t output is `key = value` or `# key =` lines", "key = value", repr(line))
        out.append((m.group(1), m.group(2)) if m else (e.group(1), None))
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
    expected = {"backlog": "4096", "buffer_size": "64K", "max_connections": "0",
                "idle_timeout": "0", "shutdown_timeout": "5s", "transform": "none",
                "reuse_port": "no", "log_level": "info", "allow": None, "deny": None,
                "max_connections_per_source": "0", "max_connection_time": "0",
                "udp_rate_per_source": "0", "metrics": None, "defer_accept": "1s",
                "tcp_keepalive": "1min", "free_bind": "no", "unix_mode": "0666",
                "unix_group": None, "log_connections": "no"}
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
    check(got.get("backlog") == "4096" and got.get("buffer_size") == "64K",
          "built-in defaults when the default file is missing", "backlog = 4096, buffer_size = 64K",
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
allow = 10.0.0.0/8
allow = 2001:db8::/32
allow = 192.0.2.1
deny = 10.66.0.0/16
max_connections_per_source = 20
max_connection_time = 1min
udp_rate_per_source = 50
proxy_trusted = 10.0.0.1
metrics = unix:/run/echod/metrics.sock
defer_accept = 5s
tcp_keepalive = 0
free_bind = yes
unix_mode = 0660
unix_group = echod
log_connections = yes
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
    ] + V2_DEFAULTS, "-t with file and command line")
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
    ] + V2_DEFAULTS, "-t with long options over the file")


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
           "idle_timeout = 90s\nshutdown_timeout = 1500ms\nreuse_port = on\ntransform = upper\n" \
           "listen = proxy:[::]:7\nlisten = proxy:unix:/run/echod/lb.sock\n" \
           "allow = 10.0.0.0/8\ndeny = 2001:DB8:0::/48\nproxy_trusted = 0.0.0.0/0\n" \
           "metrics = [::1]:9100\ndefer_accept = 250ms\ntcp_keepalive = 90\nunix_mode = 600\n" \
           "unix_group = 0\nmax_connection_time = 3600\nlog_connections = on\n"
    r1 = run(["-c", conf(text), "-t"])
    expect_rc(r1, EXIT_OK, "-t")
    r2 = run(["-c", conf(r1.stdout, "roundtrip.conf"), "-t"])
    expect_rc(r2, EXIT_OK, "-t on the output of -t")
    check(r1.stdout == r2.stdout, "-t output read back by -t", r1.stdout, r2.stdout)
    # And the defaults, with their empty lists and unset values as comments.
    r1 = run(["-c", conf(""), "-t"])
    r2 = run(["-c", conf(r1.stdout, "roundtrip.conf"), "-t"])
    expect_rc(r2, EXIT_OK, "-t on the output of -t with the defaults")
    check(r1.stdout == r2.stdout, "-t output of the defaults read back by -t", r1.stdout, r2.stdout)
    # Values from the command line too.
    r1 = run(["-c", conf(""), "-t", "--allow=192.0.2.0/24", "--deny=::1", "-l", "proxy:127.0.0.1:7"])
    r2 = run(["-c", conf(r1.stdout, "roundtrip.conf"), "-t"])
    check(r1.stdout == r2.stdout, "-t output with command-line lists read back by -t", r1.stdout,
          r2.stdout)


@harness.case(timeout=120)
def check_config_v2_bounds():
    """The keys of contract v2: each bound accepted, one step past it refused (78)."""
    good = [("max_connections_per_source", "0"), ("max_connections_per_source", "10000000"),
            ("udp_rate_per_source", "0"), ("udp_rate_per_source", "10000000"),
            ("max_connection_time", "0"), ("max_connection_time", "43200min"),
            ("defer_accept", "0"), ("defer_accept", "10min"),
            ("tcp_keepalive", "0"), ("tcp_keepalive", "32767s"),
            ("unix_mode", "0"), ("unix_mode", "0777"), ("unix_group", "4294967294"),
            ("unix_group", "a" * 32), ("allow", "0.0.0.0/0"), ("deny", "::/0"),
            ("allow", "255.255.255.255/32"), ("proxy_trusted", "ffff::/16"),
            ("metrics", "127.0.0.1:0"), ("metrics", "unix:@echod-metrics")]
    bad = [("max_connections_per_source", "10000001"), ("udp_rate_per_source", "10000001"),
           ("max_connection_time", "2592000001ms"), ("defer_accept", "600001ms"),
           ("tcp_keepalive", "32767001ms"), ("unix_mode", "01000"), ("unix_mode", "8"),
           ("unix_group", "4294967295"), ("unix_group", "a" * 33), ("allow", "0.0.0.0/33"),
           ("deny", "::/129"), ("allow", "10.0.0.1/8"), ("metrics", "udp:127.0.0.1:9"),
           ("metrics", "proxy:127.0.0.1:9"), ("free_bind", "2"), ("log_connections", "maybe")]
    for key, value in good:
        r = run(["-c", conf("%s = %s\n" % (key, value)), "-t"])
        expect_rc(r, EXIT_OK, "-t with `%s = %s`" % (key, value))
    for key, value in bad:
        _config_error("# line 1\n%s = %s\n" % (key, value), 2, "`%s = %s` on line 2" % (key, value))


@harness.case()
def check_config_rounding():
    """defer_accept and tcp_keepalive count whole seconds: -t shows a fraction rounded up."""
    r = run(["-c", conf("defer_accept = 1ms\ntcp_keepalive = 1500ms\n"), "-t"])
    expect_rc(r, EXIT_OK, "-t with fractions of seconds")
    got = dict(parse_t(r.stdout))
    check(got["defer_accept"] == "1s" and got["tcp_keepalive"] == "2s",
          "fractions of seconds rounded up", "defer_accept = 1s, tcp_keepalive = 2s", r.stdout)


@harness.case()
def cli_allow_deny():
    """--allow and --deny repeat, and replace the file's lists as -l does."""
    text = "allow = 10.0.0.0/8\nallow = 10.1.0.0/16\ndeny = 192.0.2.0/24\n"
    r = run(["-c", conf(text), "-t", "--allow=127.0.0.0/8", "--allow", "::1"])
    expect_rc(r, EXIT_OK, "-t with --allow")
    got = parse_t(r.stdout)
    check([v for k, v in got if k == "allow"] == ["127.0.0.0/8", "::1"],
          "--allow replaces the file's allow list", ["127.0.0.0/8", "::1"], r.stdout)
    check([v for k, v in got if k == "deny"] == ["192.0.2.0/24"],
          "the file's deny list without --deny", ["192.0.2.0/24"], r.stdout)
    r = run(["-c", conf(text), "-t", "--deny=2001:db8::/32"])
    got = parse_t(r.stdout)
    check([v for k, v in got if k == "deny"] == ["2001:db8::/32"],
          "--deny replaces the file's deny list", ["2001:db8::/32"], r.stdout)
    for bad in ("--allow=10.0.0.1/8", "--deny=nowhere", "--allow="):
        _usage_error([bad, "-t"], "echod %s" % bad, ["allow", "deny"])


@harness.case()
def check_config_quiet():
    """-q with -t: nothing on stdout on success; an error is still reported (78)."""
    for q in ("-q", "--quiet"):
        r = run(["-c", conf("backlog = 5\n"), "-t", q])
        expect_rc(r, EXIT_OK, "echod -t %s" % q)
        check(r.stdout == "" and r.stderr == "", "echod -t %s prints nothing" % q, "", r.describe())
        _config_error_args(["-t", q], "bogus = 1\n", 1, "echod -t %s with a bad file" % q)


@harness.case()
def version_features():
    """-V: the version, then the build features."""
    r = run(["-V"])
    expect_rc(r, EXIT_OK, "echod -V")
    lines = r.stdout.splitlines()
    check(len(lines) == 2 and re.fullmatch(r"features: [+-]systemd", lines[1]),
          "echod -V second line", "features: +systemd or -systemd", r.stdout)


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
    # A control character is shown escaped, never written to the terminal.
    r = run(["-c", conf(""), "-\x01"])
    expect_rc(r, EXIT_USAGE, "echod -^A")
    check("echod: unknown option '-\\x01'" in r.stderr.splitlines(),
          "an unknown control-character option, escaped", "'-\\x01'", r.stderr)


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


# Exit 78: the cases are in test_cli_config.py, these helpers serve both.

def _config_error(text, line, what, start=False):
    _config_error_args(["-l", "127.0.0.1:0"] if start else ["-t"], text, line, what)


def _config_error_args(args, text, line, what):
    path = conf(text, "bad.conf")
    r = run(["-c", path] + args, timeout=20)
    expect_rc(r, EXIT_CONFIG, what)
    prefix = "echod: %s:%d: " % (path, line)
    check(any(msg.startswith(prefix) for msg in r.stderr.splitlines()), what + ": error message",
          prefix + "...", r.stderr)
    check(r.stdout == "", what + ": nothing on stdout", "", r.stdout)


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
