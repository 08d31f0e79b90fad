"""Checks that raise: a case stops at the first check that does not hold,
and the runner reports it (FAIL, exit 1) or skips the case (exit 77)."""


class Failure(Exception):
    """A check did not hold; the message says what was expected and got."""


class Skip(Exception):
    """The case cannot run on this machine."""


_UNSET = object()


def fail(what, expected=_UNSET, got=_UNSET):
    """Fails the case: with expected and got, in three aligned lines."""
    if expected is _UNSET and got is _UNSET:
        raise Failure(what)
    raise Failure("%s\n  expected: %s\n       got: %s" % (what, expected, got))


def skip(reason):
    raise Skip(reason)


def check(cond, what, expected=_UNSET, got=_UNSET):
    if not cond:
        fail(what, expected, got)


def check_equal(what, expected, got):
    if expected != got:
        fail(what, show(expected), show(got))


def show(value, limit=48):
    """A short printable form: the length and head of bytes, a bounded repr."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        b = bytes(value)
        s = repr(b[:limit])
        return "%d bytes %s%s" % (len(b), s, " ..." if len(b) > limit else "")
    s = repr(value)
    return s if len(s) <= 800 else s[:800] + " ..."


def check_bytes(what, expected, got):
    """Compares byte strings; on mismatch names the first differing offset."""
    expected = bytes(expected)
    got = bytes(got)
    if expected == got:
        return
    n = min(len(expected), len(got))
    off = next((i for i in range(n) if expected[i] != got[i]), n)
    lo = max(0, off - 8)
    fail("%s (first difference at byte %d)" % (what, off),
         "%d bytes, around the difference: %r" % (len(expected), expected[lo:off + 16]),
         "%d bytes, around the difference: %r" % (len(got), got[lo:off + 16]))
