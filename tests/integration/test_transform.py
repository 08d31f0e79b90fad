#!/usr/bin/env python3
"""transform = upper: ASCII a-z come back as A-Z, every other byte unchanged."""

import os

import harness
from harness import MIB, Daemon

# Every byte value, NUL, bytes 0x80-0xff, valid and invalid UTF-8.
PAYLOAD = (bytes(range(256)) * 16
           + b"\x00abc\x00xyz\xff\xfe"
           + "héllo wörld, straße, ÿ, ǆ, ﬀ, ✓ 日本 αβγ".encode()
           + b"\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc"
           + b"the quick brown fox jumps over the lazy dog 0123456789 `{|}~@[\\]^_")


def _check_upper(d, what):
    s = d.connect()
    expected = harness.upper(PAYLOAD)
    # Sanity of the expectation itself: only a-z changed.
    assert expected.count(b"A") == PAYLOAD.count(b"A") + PAYLOAD.count(b"a")
    harness.echo(s, PAYLOAD, expect=expected, what=what)
    big = os.urandom(2 * MIB)
    harness.echo(s, big, expect=harness.upper(big), what=what + " (2 MiB random)")
    s.close()


@harness.case()
def upper_config():
    """transform = upper in the config file."""
    with Daemon(config="transform = upper\n") as d:
        d.start()
        _check_upper(d, "echo with transform = upper")
        d.stop()


@harness.case()
def upper_cli():
    """-T upper on the command line."""
    with Daemon(args=["-T", "upper"]) as d:
        d.start()
        _check_upper(d, "echo with -T upper")
        d.stop()


@harness.case()
def upper_long_option():
    """--transform=upper on the command line."""
    with Daemon(args=["--transform=upper"]) as d:
        d.start()
        _check_upper(d, "echo with --transform=upper")
        d.stop()


@harness.case()
def none_overrides_file():
    """-T none beats transform = upper in the file: bytes come back unchanged."""
    with Daemon(config="transform = upper\n", args=["-T", "none"]) as d:
        d.start()
        s = d.connect()
        harness.echo(s, PAYLOAD, what="echo with -T none over transform = upper")
        s.close()
        d.stop()


if __name__ == "__main__":
    harness.main()
