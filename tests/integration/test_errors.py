#!/usr/bin/env python3
"""Error paths reachable from outside that the other suites leave out:
over-long config values and lines, too many command-line options, an
address no interface has, and a log that is a socket."""

import os
import re
import signal
import socket
import subprocess
import tempfile

import harness
from harness import Daemon, check


def _config(text):
    tmp = tempfile.TemporaryDirectory(prefix="echod-it-")
    path = os.path.join(tmp.name, "echod.conf")
    with open(path, "w") as f:
        f.write(text)
    return tmp, path


def _check_error(r, rc, pattern, what):
    check(r.rc == rc, what + ": exit status", rc, r.describe())
    lines = [line for line in r.stderr.splitlines() if line.startswith("echod: ")]
    check(lines and any(re.search(pattern, line) for line in lines),
          what + ": the error names its cause", "a line matching /%s/" % pattern, r.stderr)
    print("%s: exit %d, %s" % (what, r.rc, lines[0]))


@harness.case()
def config_listen_too_long():
    """A `listen` value longer than 127 characters: exit 78, FILE:LINE."""
    tmp, path = _config("# a comment\nlisten = 127.0.0.1:%s\n" % ("0" * 200 + "7"))
    with tmp:
        for args in (["-t"], ["-l", "127.0.0.1:0"]):
            r = harness.run(["-c", path] + args)
            _check_error(r, harness.EXIT_CONFIG, r"echod\.conf:2: .*'listen'.*longer than 127",
                         "over-long listen value (%s)" % " ".join(args))


@harness.case()
def config_line_too_long():
    """A config line over 4096 bytes (even a comment): exit 78, FILE:LINE."""
    tmp, path = _config("backlog = 10\n#" + "x" * 5000 + "\n")
    with tmp:
        r = harness.run(["-c", path, "-t"])
        _check_error(r, harness.EXIT_CONFIG, r"echod\.conf:2: line too long", "over-long line")


@harness.case()
def config_line_too_long_on_reload():
    """The same file given to a running echod by SIGHUP: logged, nothing
    changes, echod keeps serving."""
    with Daemon(config="backlog = 10\n") as d:
        d.start()
        since = d.mark()
        d.write_config("backlog = 20\n#" + "x" * 5000 + "\n")
        d.signal(signal.SIGHUP)
        m = d.wait_log(r"line too long", since=since)
        print("reload refused: " + m.string)
        s = d.connect()
        harness.echo(s, b"still served after a refused reload\n")
        s.close()
        d.stop()


@harness.case()
def too_many_options():
    """1,000 scalar options (more than echod keeps): usage error, exit 2."""
    tmp, path = _config("")
    with tmp:
        r = harness.run(["-c", path, "-t"] + ["-b", "10"] * 1000)
    _check_error(r, harness.EXIT_USAGE, r"too many options", "1,000 options")


@harness.case()
def address_not_available():
    """An address no interface has (TEST-NET-1): exit 1 with a hint."""
    tmp, path = _config("")
    with tmp:
        r = harness.run(["-c", path, "-l", "192.0.2.1:0"])
    _check_error(r, harness.EXIT_FAILURE,
                 r"cannot listen on 192\.0\.2\.1:0.*(no interface has this address)",
                 "192.0.2.1:0")


@harness.case()
def log_to_socket():
    """stderr a stream socket (as systemd's journal stream is): every line
    arrives whole, echod serves, and exits 0 on SIGTERM."""
    harness.require_echod()
    mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with tempfile.TemporaryDirectory(prefix="echod-it-") as tmp:
        conf = os.path.join(tmp, "echod.conf")
        open(conf, "w").close()
        p = subprocess.Popen([harness.ECHOD, "-c", conf, "-l", "127.0.0.1:0", "--log-level=debug"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=theirs,
                             env=harness.daemon_env())
        theirs.close()
        try:
            mine.settimeout(10)
            text = b""
            while b"echod: ready\n" not in text:
                chunk = mine.recv(4096)
                check(chunk, "log lines over the socket", "`echod: ready`", text)
                text += chunk
            port = int(text.split(b"listening on 127.0.0.1:")[1].split(b" ")[0])
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                msg = b"logged through a socket\n"
                s.sendall(msg)
                got = harness.recv_exact(s, len(msg))
                harness.check_bytes("echo", msg, got)
            p.send_signal(signal.SIGTERM)
            while True:
                chunk = mine.recv(4096)
                if not chunk:
                    break
                text += chunk
            rc = p.wait(20)
            out = text.decode(errors="replace")
            harness.check_no_sanitizer_report(out, "echod")
            check(rc == 0, "exit status after SIGTERM", 0, rc)
            lines = out.splitlines()
            torn = [line for line in lines if not line.startswith("echod: ")]
            check(not torn, "every log line whole", "each starts with `echod: `", torn[:5])
            print("%d log lines over a stream socket, exit 0" % len(lines))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            mine.close()


if __name__ == "__main__":
    harness.main()
