"""The client side: connecting to echod, sending and receiving with a
deadline on every wait, and the payloads the cases send."""

import fcntl
import hashlib
import select
import selectors
import socket
import sys
import termios
import time

from lib.check import check, check_bytes, fail, show
from lib.kernel import family_of, tcp_queues

MIB = 1024 * 1024

# Generous: the suites also run under sanitizers on busy machines.
TIMEOUT = 30.0


def connect(listener, timeout=10, rcvbuf=None, family=None, address=None):
    """A blocking stream socket connected to the listener (with a timeout)."""
    fam = family if family is not None else listener.family
    addr = address if address is not None else listener.address
    s = socket.socket(fam, socket.SOCK_STREAM)
    try:
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.settimeout(timeout)
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


_scratch = memoryview(bytearray(1 << 20))


def recv_some(sock, limit=1 << 20):
    """sock.recv() through one reused buffer: no fresh 1 MiB allocation per
    call (meson sets MALLOC_PERTURB_, which makes those cost a memset each)."""
    n = sock.recv_into(_scratch[:min(limit, len(_scratch))])
    return bytes(_scratch[:n])


def recv_exact(sock, n, timeout=10, what="echo"):
    """Receives exactly n bytes (fails on EOF, reset or timeout)."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            fail("%s: %d bytes within %ss" % (what, n, timeout), "%d bytes" % n,
                 "%d bytes, then nothing: %s" % (len(buf), show(buf)))
        sock.settimeout(left)
        try:
            chunk = recv_some(sock, n - len(buf))
        except socket.timeout:
            continue
        except OSError as e:
            fail("%s: %d bytes" % (what, n), "%d bytes" % n,
                 "%d bytes then %s: %s" % (len(buf), e.__class__.__name__, e))
        if not chunk:
            fail("%s: %d bytes" % (what, n), "%d bytes" % n,
                 "EOF after %d bytes: %s" % (len(buf), show(buf)))
        buf += chunk
    return bytes(buf)


def echo(sock, data, timeout=10, what="echo", expect=None):
    """Sends data (may be large: sends and receives interleaved) and checks
    that exactly expect (default: data) comes back."""
    data = bytes(data)
    expect = data if expect is None else bytes(expect)
    got = pump([(sock, data, False)], timeout=timeout, what=what)[0]
    check_bytes(what, expect, got)
    return got


def expect_eof(sock, timeout=10, what="EOF from echod"):
    """Reads until EOF; returns what came before it. Fails on timeout."""
    deadline = time.monotonic() + timeout
    buf = bytearray()
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            fail(what + " within %ss" % timeout, "EOF", "connection still open after %d bytes" % len(buf))
        sock.settimeout(left)
        try:
            chunk = recv_some(sock)
        except socket.timeout:
            continue
        except OSError as e:
            fail(what, "EOF (orderly close)", "%s: %s after %d bytes" % (e.__class__.__name__, e, len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk


def expect_nothing(sock, seconds, what):
    """Checks that nothing arrives (no data, no EOF) for `seconds`."""
    sock.settimeout(seconds)
    try:
        chunk = sock.recv(4096)
    except socket.timeout:
        return
    except OSError as e:
        fail(what, "nothing for %ss" % seconds, "%s: %s" % (e.__class__.__name__, e))
    fail(what, "nothing for %ss" % seconds, "EOF" if not chunk else show(chunk))


def pump(jobs, timeout=30, what="echo", expect_len=None):
    """Full-duplex transfer for many connections at once, on one selector.

    jobs: list of (sock, payload, shut) where payload is bytes-like and shut
    says whether to shutdown(SHUT_WR) after the payload. Returns the bytes
    received on each connection (until len(payload) bytes, or EOF when shut).
    """
    sel = selectors.DefaultSelector()
    state = []
    for i, (sock, payload, shut) in enumerate(jobs):
        sock.setblocking(False)
        st = {"i": i, "sock": sock, "out": memoryview(payload).cast("B"), "sent": 0,
              "want": len(payload), "shut": shut, "buf": bytearray(), "done": False,
              "sent_shut": False}
        state.append(st)
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    pending = len(state)
    deadline = time.monotonic() + timeout
    try:
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                bad = [s for s in state if not s["done"]][:5]
                fail("%s: all %d connections done within %ss" % (what, len(state), timeout),
                     "every payload echoed",
                     "%d unfinished, e.g. %s" % (pending, ["#%d sent %d/%d got %d" % (
                         s["i"], s["sent"], len(s["out"]), len(s["buf"])) for s in bad]))
            for key, ev in sel.select(min(left, 1.0)):
                st = key.data
                sock = st["sock"]
                if ev & selectors.EVENT_WRITE:
                    if st["sent"] < len(st["out"]):
                        try:
                            st["sent"] += sock.send(st["out"][st["sent"]:st["sent"] + 256 * 1024])
                        except BlockingIOError:
                            pass
                        except OSError as e:
                            fail("%s: send on connection #%d" % (what, st["i"]), "no error",
                                 "%s after %d bytes" % (e, st["sent"]))
                    if st["sent"] == len(st["out"]):
                        if st["shut"] and not st["sent_shut"]:
                            sock.shutdown(socket.SHUT_WR)
                            st["sent_shut"] = True
                        if not st["done"]:
                            sel.modify(sock, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        chunk = recv_some(sock)
                    except BlockingIOError:
                        continue
                    except OSError as e:
                        fail("%s: receive on connection #%d" % (what, st["i"]), "no error",
                             "%s after %d bytes" % (e, len(st["buf"])))
                    if chunk:
                        st["buf"] += chunk
                        if not st["shut"] and len(st["buf"]) >= st["want"]:
                            st["done"] = True
                    elif st["shut"]:
                        st["done"] = True
                    else:
                        fail("%s: connection #%d" % (what, st["i"]),
                             "%d bytes back" % st["want"], "EOF after %d bytes" % len(st["buf"]))
                    if st["done"]:
                        sel.unregister(sock)
                        pending -= 1
    finally:
        sel.close()
        for st in state:
            try:
                st["sock"].setblocking(True)
            except OSError:
                pass
    return [bytes(st["buf"]) for st in state]


def fill_without_reading(sock, payload, stall=1.0, timeout=30):
    """Writes payload (never reads) until the socket has accepted nothing for
    `stall` seconds or all of it is written. Returns the number of bytes written."""
    out = memoryview(payload).cast("B")
    sock.setblocking(False)
    written = 0
    deadline = time.monotonic() + timeout
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_WRITE)
    try:
        while written < len(out) and time.monotonic() < deadline:
            if not sel.select(stall):
                break
            try:
                written += sock.send(out[written:written + 256 * 1024])
            except BlockingIOError:
                pass
            except OSError as e:
                fail("a client writing without reading", "its writes block, no error",
                     "%s: %s after %d bytes (the daemon closed the connection)" % (
                         e.__class__.__name__, e, written))
    finally:
        sel.close()
        sock.setblocking(True)
    return written


def fill_until_held(d, sock, payload, chunk=32 * 1024, settle=0.3, timeout=60):
    """Sends payload in pieces, without reading, until echod holds unsent
    data of its own (neither in its socket's send queue nor in the client's
    receive queue) while having read everything sent so far, and that state
    lasts `settle` seconds (longer than a delayed ACK: TCP's queues and
    windows have stopped moving). Returns (bytes sent, bytes echod holds)."""
    port = d.listener().port
    local = sock.getsockname()[1]
    sent = 0
    deadline = time.monotonic() + timeout
    sock.settimeout(timeout)

    def measure():
        q = tcp_queues(port, local)
        inq = int.from_bytes(fcntl.ioctl(sock, termios.FIONREAD, bytes(4)), sys.byteorder)
        return q, inq

    def quiet(pause):
        last = None
        while True:
            q, inq = measure()
            if q is not None and q[1] == 0 and (q, inq) == last:
                return sent - q[0] - inq
            if time.monotonic() > deadline:
                fail("echod reads what the client sent (its receive queue drains)", "rx_queue 0",
                     "tx_queue:rx_queue = %s after %d bytes" % (q, sent))
            last = (q, inq)
            time.sleep(pause)

    while sent < len(payload):
        piece = payload[sent:sent + chunk]
        sock.sendall(piece)
        sent += len(piece)
        if quiet(0.01) > 0:
            held = quiet(settle)
            if held > 0:
                return sent, held
    fail("test setup: echod holds unsent data", "> 0 bytes held after at most %d sent" % len(payload),
         "none held after %d bytes" % sent)


def wait_read_by_daemon(d, sock, timeout=15):
    """Waits until the daemon has read everything the client sent (its
    socket's receive queue is empty). Returns the daemon socket's send queue."""
    port = d.listener().port
    local = sock.getsockname()[1]
    deadline = time.monotonic() + timeout
    q = None
    while time.monotonic() < deadline:
        q = tcp_queues(port, local)
        if q is not None and q[1] == 0:
            return q[0]
        time.sleep(0.05)
    fail("echod reads what the client sent (its receive queue drains)", "rx_queue 0",
         "tx_queue:rx_queue = %s" % (q,))


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.hexdigest()


def upper(data):
    """What `transform = upper` must send back: a-z -> A-Z, nothing else changed."""
    return bytes(data).translate(_UPPER_TABLE)


_UPPER_TABLE = bytes(range(256)).translate(
    bytes.maketrans(b"abcdefghijklmnopqrstuvwxyz", b"ABCDEFGHIJKLMNOPQRSTUVWXYZ"))


def payload(n=65536, seed=1):
    """Every byte value, NUL and invalid UTF-8 included."""
    out = bytearray()
    x = seed
    while len(out) < n:
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out.append((x >> 16) & 0xFF)
    out[:256] = bytes(range(256))
    return bytes(out[:n])


def tcp_echo(addr, data, timeout=TIMEOUT):
    """Sends data to (host, port), half-closes, reads until echod closes;
    returns the bytes."""
    with connect(None, timeout=timeout, family=family_of(addr[0]), address=addr) as s:
        return pump([(s, data, True)], timeout=timeout,
                    what="echo from %s:%d" % (addr[0], addr[1]))[0]


def check_tcp_echo(addr, data=None):
    data = payload() if data is None else data
    got = tcp_echo(addr, data)
    check(got == data, "%s:%d echoed %d bytes, not the %d sent (or not the same bytes)"
          % (addr[0], addr[1], len(got), len(data)))


def check_udp_echo(addr, data=b"ping \x00\xff\xfe udp", sock=None, tries=10):
    """One datagram out, the same datagram back. UDP may drop: retry."""
    own = sock is None
    s = socket.socket(family_of(addr[0]), socket.SOCK_DGRAM) if own else sock
    try:
        per_try = TIMEOUT / tries
        for _ in range(tries):
            s.sendto(data, addr)
            r, _, _ = select.select([s], [], [], per_try)
            if r:
                got, src = s.recvfrom(65536)
                check(got == data, "UDP echo returned %r, sent %r" % (got, data))
                check(src[1] == addr[1], "UDP echo came from port %d, not %d" % (src[1], addr[1]))
                return
        fail("no UDP echo from %s:%d" % addr[:2])
    finally:
        if own:
            s.close()
