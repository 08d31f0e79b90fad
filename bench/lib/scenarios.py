"""The scenarios: what echod-bench runs, how each is named and measured."""


class Scenario:
    """One scenario. proto: the servers it runs on (tcp: the TCP servers,
    udp: those given with --udp). mode "mixed" runs two echod-bench
    processes at once: ping-pong (args) beside streams (stream_args)."""

    def __init__(self, name, mode, args, quick, unit, note="", proto="tcp",
                 stream_args=None, stream_quick=None):
        self.name, self.mode, self.args, self.quick = name, mode, args, quick
        self.unit, self.note, self.proto = unit, note, proto
        self.stream_args, self.stream_quick = stream_args, stream_quick
        self.title = self.describe(args)

    def use_quick(self):
        self.stream_args = self.stream_quick
        self.title = self.describe(self.quick)
        self.note = ""

    def describe(self, args):
        """what the arguments do, in words"""
        def opt(flag, default):
            return args[args.index(flag) + 1] if flag in args else default
        c = int(opt("-c", "1"))
        conns = f"{c:,} connection" + ("s" if c != 1 else "")
        size = opt("-s", "64K" if self.mode == "stream" else "64")
        size = size[:-1] + " KiB" if size.endswith("K") else size + " B"
        p = int(opt("-P", "1"))
        if self.mode == "pingpong":
            return f"{size} ping-pong, {conns}" + (f", {p} in flight each" if p > 1 else "")
        if self.mode == "mixed":
            sa = self.stream_args
            n = int(sa[sa.index("-c") + 1])
            return (f"{size} ping-pong, {conns}, beside {n} connections streaming "
                    f"{sa[sa.index('-s') + 1].replace('K', ' KiB')} writes")
        if self.mode == "udp":
            return f"{size} datagrams, {c} sockets, {p} in flight each"
        if self.mode == "stream":
            return f"streaming {size} writes, {conns}"
        if self.mode == "connect":
            return f"connect, {size} echo, close; {c} at once"
        return f"{c:,} idle connections" + (f" ({self.note})" if self.note else "")

    @property
    def metric(self):
        return {"msg": "msgs_per_s", "dgram": "msgs_per_s", "MB": "mb_per_s",
                "conn": "conns_per_s", "idle": "rss_per_conn"}[self.unit]

    @property
    def metric_unit(self):
        return {"msg": "msg/s", "dgram": "dgram/s", "MB": "MB/s", "conn": "conn/s",
                "idle": "B RSS/conn"}[self.unit]


def scenarios(idle_max):
    return [
        Scenario("pp1", "pingpong", ["-c", "1"], ["-c", "1"], "msg"),
        Scenario("pp100", "pingpong", ["-c", "100"], ["-c", "10"], "msg"),
        Scenario("pp1000", "pingpong", ["-c", "1000", "--open-timeout", "60"],
                 ["-c", "20"], "msg"),
        Scenario("pp100x16", "pingpong", ["-c", "100", "-P", "16"],
                 ["-c", "10", "-P", "16"], "msg"),
        Scenario("st1", "stream", ["-c", "1", "-s", "64K"], ["-c", "1", "-s", "64K"], "MB"),
        Scenario("st10", "stream", ["-c", "10", "-s", "64K"], ["-c", "2", "-s", "64K"], "MB"),
        # Fairness: what streaming neighbours do to a ping-pong client's
        # latency (the shared kit's mixed.sh: 10 beside 8). The streams
        # start first and run through the ping-pong's whole measured time.
        Scenario("mixed", "mixed", ["-c", "10", "-s", "64"], ["-c", "2", "-s", "64"], "msg",
                 stream_args=["-c", "8", "-s", "64K"], stream_quick=["-c", "2", "-s", "64K"]),
        Scenario("udp32", "udp", ["-c", "32", "-P", "8", "-s", "64"],
                 ["-c", "4", "-P", "4", "-s", "64"], "dgram", proto="udp"),
        Scenario("conn32", "connect", ["-c", "32"], ["-c", "4"], "conn"),
        Scenario("idle10k", "idle", ["-c", "10000", "--open-timeout", "120"],
                 ["-c", "50"], "idle"),
        Scenario("idlemax", "idle", ["-c", str(idle_max), "--open-timeout", "120"],
                 ["-c", "100"], "idle", "the fd limit"),
    ]
