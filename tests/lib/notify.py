"""A NOTIFY_SOCKET standing in for the service manager's: it receives
echod's READY=1, STATUS=, STOPPING=1, RELOADING=1 and WATCHDOG=1 messages
with their order and their sender's pid."""

import os
import re
import select
import socket
import struct
import time

from lib.check import fail
from lib.client import TIMEOUT
from lib.service import tmpdir

SCM_CREDENTIALS = getattr(socket, "SCM_CREDENTIALS", 2)
SO_PASSCRED = getattr(socket, "SO_PASSCRED", 16)


class Notify:
    """An AF_UNIX datagram socket standing in for the service manager's
    notification socket. Each message keeps its order, its sender pid and
    its fields."""

    def __init__(self):
        self.path = os.path.join(tmpdir(), "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
        self.sock.bind(self.path)
        self.messages = []  # (sender pid or None, [field, ...], raw text)
        self.seen = 0       # messages before this index were consumed

    def env(self):
        return {"NOTIFY_SOCKET": self.path}

    def _recv(self, timeout):
        r, _, _ = select.select([self.sock], [], [], max(0.0, timeout))
        if not r:
            return False
        data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(12))
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == SCM_CREDENTIALS and len(cdata) >= 12:
                pid = struct.unpack("iII", cdata[:12])[0]
        text = data.decode("utf-8", "replace")
        fields = [f for f in text.split("\n") if f]
        self.messages.append((pid, fields, text))
        return True

    def drain(self):
        """Takes every message already queued, without waiting."""
        while self._recv(0):
            pass

    def wait_for(self, field_rx, timeout=TIMEOUT, what=None, proc=None):
        """Waits for the next unconsumed message with a field matching
        field_rx; returns (index, message). Messages before it are
        consumed too (they stay in self.messages for order checks)."""
        rx = re.compile(field_rx)
        deadline = time.monotonic() + timeout
        exited_drained = False
        while True:
            while self.seen < len(self.messages):
                i = self.seen
                self.seen += 1
                msg = self.messages[i]
                if any(rx.fullmatch(f) for f in msg[1]):
                    return i, msg
            left = deadline - time.monotonic()
            if proc is not None and proc.poll() is not None and exited_drained:
                fail("echod exited (status %s) before notification %s; received: %r; stderr:\n%s"
                     % (proc.status, what or field_rx, [m[2] for m in self.messages],
                        proc.stderr_text()))
            if proc is not None and proc.poll() is not None:
                exited_drained = True  # one more pass over what it sent before exiting
                self.drain()
                continue
            if left <= 0:
                extra = ("; stderr:\n" + proc.stderr_text()) if proc else ""
                fail("no notification %s within %ds; received: %r%s"
                     % (what or field_rx, timeout, [m[2] for m in self.messages], extra))
            self._recv(min(left, 0.5))

    def all_fields(self):
        return [(i, f) for i, m in enumerate(self.messages) for f in m[1]]

    def close(self):
        self.sock.close()
