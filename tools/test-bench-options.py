#!/usr/bin/env python3
"""echod-bench's command line: the values it shares with echod (sizes,
durations, addresses) follow echod's parsers, and every bad value is a usage
error (exit status 2) that names the option. One case a row: arguments, the
expected exit status, a piece of the expected message.

A value that parses is seen by the run that follows: it fails (status 1)
only because nothing listens on the abstract Unix socket it is pointed at.

usage: test-bench-options.py ECHOD_BENCH
"""
import os
import subprocess
import sys

NOBODY = f"unix:@echod-bench-test-{os.getpid()}"
OPENED = "could be opened"  # the parse went through; the connect did not

CASES = [
    # sizes, as in echod.conf(5)
    (["-s", "16K", NOBODY], 1, OPENED),
    (["-s", "1M", NOBODY], 1, OPENED),
    (["-s", "16KB", NOBODY], 2, "invalid size for --size: '16KB'"),
    (["-s", "-1", NOBODY], 2, "invalid size for --size"),
    (["-s", "65M", NOBODY], 2, "--size must be between 1 and 64M bytes"),
    # durations, as in echod.conf(5), and seconds with decimals
    (["-d", "250ms", NOBODY], 1, OPENED),
    (["-d", "2min", "-w", "0", NOBODY], 1, OPENED),
    (["-d", "0.25", "-w", "0.1s", NOBODY], 1, OPENED),
    (["-d", "0", NOBODY], 2, "--duration must be between 1ms and 1440min"),
    (["-d", "5h", NOBODY], 2, "invalid duration for --duration: '5h'"),
    (["-d", "1.2345", NOBODY], 2, "at most three decimals"),
    (["-d", ".5", NOBODY], 2, "invalid duration for --duration"),
    (["--stall-timeout", "5ms", NOBODY], 2, "--stall-timeout must be between 10ms"),
    # counts
    (["-c", "0", NOBODY], 2, "--connections must be between 1 and 1000000"),
    (["-c", "1x", NOBODY], 2, "invalid value for --connections: '1x'"),
    # addresses, as for echod -l
    (["localhost:7"], 2, "host names are not resolved"),
    (["unix:relative"], 2, "must be absolute or start with '@'"),
    (["127.0.0.1:0"], 2, "port 0 cannot be connected to"),
    (["[::1]7"], 2, "expected [IPV6]:PORT"),
    (["udp:127.0.0.1:7"], 2, "is a UDP address; the pingpong mode speaks TCP"),
    # what applies to which mode
    (["-m", "udp", NOBODY], 2, "the udp mode needs an IP address"),
    (["-m", "udp", "-s", "8", "127.0.0.1:7"], 2, "between 16 and 65507 bytes"),
    (["-m", "udp", "--loss-timeout", "2s", "127.0.0.1:7"], 2,
     "--loss-timeout must be shorter than --stall-timeout"),
    (["-m", "udp", "--reset", "127.0.0.1:7"], 2, "apply to TCP only"),
    (["--loss-timeout", "100ms", NOBODY], 2, "--loss-timeout applies to udp mode only"),
    (["-m", "stream", "-P", "4", NOBODY], 2, "--pipeline applies to pingpong and udp"),
    (["-m", "nope", NOBODY], 2, "unknown mode 'nope'"),
]


def main():
    bench = sys.argv[1]
    failed = 0
    for args, status, text in CASES:
        argv = [bench, "-q", "--open-timeout", "1s"] + args
        r = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if r.returncode != status or text not in r.stderr:
            failed += 1
            print(f"FAIL {args}: status {r.returncode} (want {status}), "
                  f"stderr {r.stderr.strip()!r} (want {text!r})")
    print(f"{len(CASES) - failed} of {len(CASES)} cases passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
