#!/usr/bin/env python3
"""Config file and option value errors: exit 78 (or 2) with a message
that names the file and line, for every way a file can be wrong."""

import os
import re
import signal
import time

import harness
from harness import EXIT_CONFIG, EXIT_OK, EXIT_USAGE, check
from test_cli import _config_error, _tmp, conf, expect_rc, parse_t, run


# ---------------------------------------------------------------- exit 78

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


def _not_a_file(path, what, message, timeout=10):
    """-t on something other than a small regular file: exit 78 at once,
    naming the file and why, whatever the file is."""
    start = time.monotonic()
    r = run(["-c", path, "-t"], timeout=timeout)
    took = time.monotonic() - start
    expect_rc(r, EXIT_CONFIG, what)
    want = "echod: %s: %s" % (path, message)
    check(want in r.stderr.splitlines(), what + ": message", want, r.stderr)
    check(r.stdout == "", what + ": nothing on stdout", "", r.stdout)
    check(took < timeout / 2, what + ": promptly", "< %ss" % (timeout / 2), "%.1fs" % took)


@harness.case()
def config_fifo():
    """-c naming a FIFO that nobody writes: exit 78 at once, not a hang."""
    path = os.path.join(_tmp.name, "fifo.conf")
    os.mkfifo(path)
    _not_a_file(path, "echod -t -c FIFO", "not a regular file")


@harness.case()
def config_larger_than_it_says():
    """A regular file whose size says 0 but whose reading never ends soon
    (/proc/kallsyms, several MB): the 1M bound holds while reading."""
    path = "/proc/kallsyms"
    if not os.path.exists(path):
        raise harness.Skip("no " + path)
    _not_a_file(path, "echod -t -c /proc/kallsyms", "larger than 1M")


@harness.case()
def config_device():
    """-c /dev/zero (endless) and -c /dev/null (a device): exit 78, no memory growth."""
    _not_a_file("/dev/zero", "echod -t -c /dev/zero", "not a regular file")
    _not_a_file("/dev/null", "echod -t -c /dev/null", "not a regular file")


@harness.case()
def config_directory():
    """-c naming a directory: exit 78."""
    _not_a_file(_tmp.name, "echod -t -c DIRECTORY", "not a regular file")


@harness.case()
def config_too_large():
    """A config file over 1M: exit 78; exactly 1M of comments is read."""
    path = conf(("#" * 63 + "\n") * (1024 * 1024 // 64), "big.conf")
    r = run(["-c", path, "-t"])
    expect_rc(r, EXIT_OK, "echod -t with a file of exactly 1M")
    with open(path, "a") as f:
        f.write("\n")
    _not_a_file(path, "echod -t with a file of 1M + 1 byte", "larger than 1M")


@harness.case()
def config_fifo_reload():
    """SIGHUP while the config file is a FIFO: the error is logged, echod
    keeps serving (it does not block on the FIFO)."""
    with harness.Daemon(config="transform = upper\n") as d:
        d.start()
        os.unlink(d.config_path)
        os.mkfifo(d.config_path)
        since = d.mark()
        d.signal(signal.SIGHUP)
        d.wait_log(r"^echod: %s: not a regular file$" % re.escape(d.config_path), timeout=10,
                   since=since)
        s = d.connect()
        harness.echo(s, b"abc", expect=b"ABC", what="echo after a reload from a FIFO")
        s.close()
        d.check_alive("echod keeps running after a reload from a FIFO")


@harness.case()
def config_nul_byte():
    """A NUL byte in the file: exit 78 naming its line (nothing after it is dropped silently)."""
    path = conf(b"# line 1\nbacklog = 10\0garbage\n", "nul.conf")
    r = run(["-c", path, "-t"])
    expect_rc(r, EXIT_CONFIG, "a NUL byte on line 2")
    want = "echod: %s:2: NUL byte in the line" % path
    check(want in r.stderr.splitlines(), "a NUL byte on line 2: message", want, r.stderr)


@harness.case()
def config_byte_order_mark():
    """A UTF-8 byte-order mark at the start of the file is skipped."""
    path = conf(b"\xef\xbb\xbflisten = 127.0.0.1:7\nbacklog = 12\n", "bom.conf")
    r = run(["-c", path, "-t"])
    expect_rc(r, EXIT_OK, "a file starting with a byte-order mark")
    got = parse_t(r.stdout)
    check(("listen", "127.0.0.1:7") in got and ("backlog", "12") in got,
          "the first key after the byte-order mark", "listen = 127.0.0.1:7", r.stdout)


@harness.case()
def usage_control_character():
    """A control character in an option's value: exit 2; -t can never print
    a line the value did not come from."""
    for args in (["-l", "unix:/run/x\nbuffer_size = 64M"], ["--listen=unix:/run/\x1b[1m"],
                 ["-T", "upper\r"], ["-i", "5\x7f"]):
        r = run(["-c", conf("")] + args + ["-t"])
        expect_rc(r, EXIT_USAGE, "echod %r -t" % args)
        check("control character" in r.stderr, "echod %r: message" % args,
              "... control character ...", r.stderr)
        check(r.stdout == "", "echod %r: nothing on stdout" % args, "", r.stdout)
    # In the file: 78.
    _config_error("# line 1\nlisten = unix:/run/x\rbacklog = 1\n", 2, "a CR inside a value")


@harness.case()
def usage_option_takes_no_value():
    """--help=x, --check-config=yes, --version=x: the message names the
    option typed and says it takes no value."""
    for arg, name in (("--help=x", "--help"), ("--check-config=yes", "--check-config"),
                      ("--version=x", "--version"), ("--check=1", "--check-config")):
        r = run(["-c", conf(""), arg])
        expect_rc(r, EXIT_USAGE, "echod %s" % arg)
        want = "echod: option '%s' takes no value" % name
        check(want in r.stderr.splitlines(), "echod %s: message" % arg, want, r.stderr)
        check(r.stdout == "", "echod %s: nothing on stdout" % arg, "", r.stdout)


@harness.case()
def config_unix_path_length():
    """A unix path of 107 characters is accepted; 108 is refused with the true bound."""
    path = "/" + "p" * 106
    r = run(["-c", conf("listen = unix:%s\n" % path), "-t"])
    expect_rc(r, EXIT_OK, "a unix socket path of 107 characters")
    r = run(["-c", conf(""), "-l", "unix:%sp" % path, "-t"])
    expect_rc(r, EXIT_USAGE, "a unix socket path of 108 characters")
    check("2 to 107 characters" in r.stderr, "the bound in the message", "2 to 107 characters",
          r.stderr)


def _config_message(text, line, message, what):
    path = conf(text, "msg.conf")
    r = run(["-c", path, "-t"])
    expect_rc(r, EXIT_CONFIG, what)
    want = "echod: %s:%d: %s" % (path, line, message)
    check(want in r.stderr.splitlines(), what + ": message", want, r.stderr)


@harness.case()
def config_did_you_mean():
    """An unknown key near a known one: the message suggests it."""
    _config_message("bufer_size = 1K\n", 1,
                    "unknown key 'bufer_size' (did you mean 'buffer_size'?)", "a typo in a key")
    _config_message("# x\nBacklog = 1\n", 2,
                    "unknown key 'Backlog' (did you mean 'backlog'?)", "a key with the wrong case")
    _config_message("colour = blue\n", 1, "unknown key 'colour'", "a key near none")


@harness.case()
def config_inline_comment():
    """`backlog = 10 # comment`: the message says inline comments are not allowed."""
    _config_message("backlog = 10 # comment\n", 1,
                    "invalid value for 'backlog': '10 # comment' (inline comments are not allowed: "
                    "a comment must be on a line of its own)", "an inline comment")


@harness.case()
def usage_address_messages():
    """udp:unix: says UDP needs an IP address; 300.1.1.1 is not called a host name."""
    for value, want, unwanted in (
            ("udp:unix:/x", "UDP needs an IP address", None),
            ("300.1.1.1:7", "invalid IPv4 address '300.1.1.1'", "host names"),
            ("echo.example.com:7", "host names are not resolved", None)):
        r = run(["-c", conf(""), "-l", value, "-t"])
        expect_rc(r, EXIT_USAGE, "echod -l %s" % value)
        check(want in r.stderr, "echod -l %s: message" % value, want, r.stderr)
        if unwanted:
            check(unwanted not in r.stderr, "echod -l %s: no misleading hint" % value,
                  "no '%s'" % unwanted, r.stderr)


if __name__ == "__main__":
    harness.main()
