"""The fault proxy of the real-Kafka tests (tests/lib/faultproxy.py) against
a local echo server: each mode on open and new connections, and enough
throughput not to be what a test measures."""
import socket
import socketserver
import threading
import time

import pytest

from faultproxy import FaultProxy


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def proxy():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    with FaultProxy(f"127.0.0.1:{server.server_address[1]}") as p:
        yield p
    server.shutdown()
    server.server_close()


def connect(proxy):
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def recv_exactly(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


def rtt(s, msg=b"x" * 100):
    t = time.monotonic()
    s.sendall(msg)
    assert recv_exactly(s, len(msg)) == msg
    return time.monotonic() - t


def silent(s, seconds=0.4):
    s.settimeout(seconds)
    try:
        data = s.recv(1)
    except socket.timeout:
        return True
    finally:
        s.settimeout(5)
    raise AssertionError(f"got {data!r} through a blackhole")


def test_pass_keeps_up_with_many_small_round_trips_and_bulk(proxy):
    with connect(proxy) as s:
        t = time.monotonic()
        for _ in range(2000):
            rtt(s)
        small = time.monotonic() - t
        bulk = bytes(range(256)) * 32768  # 8 MiB
        t = time.monotonic()
        sender = threading.Thread(target=s.sendall, args=(bulk,))
        sender.start()
        assert recv_exactly(s, len(bulk)) == bulk
        sender.join()
        big = time.monotonic() - t
    assert small < 2.0, f"2000 round trips took {small:.2f} s"
    assert big < 2.0, f"8 MiB echoed in {big:.2f} s"
    assert proxy.forwarded == 2 * (2000 * 100 + len(bulk))


def test_delay_on_open_and_new_connections_pipelined(proxy):
    with connect(proxy) as old:
        assert rtt(old) < 0.1
        proxy.delay(150)
        assert proxy.mode == ("delay", 150)
        with connect(proxy) as new:
            for s in (old, new):
                took = rtt(s)
                assert 0.3 <= took < 0.5, took  # 150 ms each way
            # ten requests sent at once come back together: latency, not a queue
            t = time.monotonic()
            for i in range(10):
                new.sendall(b"%02d" % i)
                time.sleep(0.01)
            assert recv_exactly(new, 20) == b"".join(b"%02d" % i for i in range(10))
            assert time.monotonic() - t < 0.6
        proxy.passthrough()
        assert rtt(old) < 0.1


def test_blackhole_keeps_connections_silent_then_delivers(proxy):
    with connect(proxy) as old:
        assert rtt(old) < 0.1
        proxy.blackhole()
        old.sendall(b"held")
        with connect(proxy) as new:  # accepted, not refused
            new.sendall(b"also held")
            assert silent(old) and silent(new)
            assert proxy.connections == 2
            proxy.passthrough()
            assert recv_exactly(old, 4) == b"held"
            assert recv_exactly(new, 9) == b"also held"


def test_reset_closes_connections_and_refuses_until_mode_changes(proxy):
    with connect(proxy) as old:
        assert rtt(old) < 0.1
        proxy.reset()
        with pytest.raises((ConnectionResetError, EOFError, BrokenPipeError)):
            rtt(old)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        assert proxy.connections == 0
    proxy.passthrough()
    with connect(proxy) as s:
        assert rtt(s) < 0.1


def test_nothing_behind_the_proxy_resets_the_client():
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))  # a port nobody listens on
        with FaultProxy(f"127.0.0.1:{placeholder.getsockname()[1]}") as p:
            with pytest.raises((ConnectionResetError, EOFError)):
                with connect(p) as s:
                    rtt(s)
