"""The scenarios: what echod-bench runs, how each is named and measured."""


class Scenario:
    def __init__(self, name, mode, args, quick, unit, note=""):
        self.name, self.mode, self.args, self.quick = name, mode, args, quick
        self.unit, self.note = unit, note
        self.title = self.describe(args)

    def use_quick(self):
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
        if self.mode == "stream":
            return f"streaming {size} writes, {conns}"
        if self.mode == "connect":
            return f"connect, {size} echo, close; {c} at once"
        return f"{c:,} idle connections" + (f" ({self.note})" if self.note else "")

    @property
    def metric(self):
        return {"msg": "msgs_per_s", "MB": "mb_per_s", "conn": "conns_per_s",
                "idle": "rss_per_conn"}[self.unit]

    @property
    def metric_unit(self):
        return {"msg": "msg/s", "MB": "MB/s", "conn": "conn/s",
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
        Scenario("conn32", "connect", ["-c", "32"], ["-c", "4"], "conn"),
        Scenario("idle10k", "idle", ["-c", "10000", "--open-timeout", "120"],
                 ["-c", "50"], "idle"),
        Scenario("idlemax", "idle", ["-c", str(idle_max), "--open-timeout", "120"],
                 ["-c", "100"], "idle", "the fd limit"),
    ]
