"""The test library of echod's Python suites (integration, systemd, e2e and
the benchmark smoke test). Standard library only.

  check    Failure and Skip, check(), check_equal(), check_bytes()
  kernel   what the machine offers: IPv6 loopback, free ports, TCP queues, fd limits
  client   connecting, sending and receiving, payloads
  daemon   echod as a foreground process: start, log, signals, /proc
  service  echod started the way a service manager starts it (passed fds)
  notify   a NOTIFY_SOCKET standing in for the service manager
  runner   the case registry and main(): one case per process, 77 = skip
"""
