"""apistandin.py - a provider's event API, standing in for the real one in the
tests of auth = api-lookup (tests/auth/test_api_lookup.py).

A threaded HTTP/1.1 server (keep-alive, Content-Length or chunked answers),
plain or TLS, on one or more loopback addresses and one port. It answers
GET <prefix><percent-encoded id> as it is told per id (decoded), and
records what it was asked:

  api = ApiStandin()                       # 127.0.0.1, a free port
  api.event("evt_1", topic="orders/created")   # 200 with that event
  api.answer("evt_2", status=404)
  api.answer("evt_3", status=200, body=b"<html>", ctype="text/html")
  api.answer("evt_4", raw=b"garbage\\r\\n")  # bytes that are not HTTP, then close
  api.answer("evt_5", delay=2.0, status=500)
  api.delay = 1.5                          # before every answer
  api.calls["/v1/events/evt_1"], api.requests[-1]["headers"]["authorization"]
  api.max_active                           # the most requests served at once
  api.reset_max_active()                   # ... from now on

An id without an answer gets `api.default` (404 unless changed). Requests
for paths under none of the prefixes get 404 and are recorded too.
"""
import collections
import http.server
import json
import socket
import ssl
import threading
import time
import urllib.parse


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, family, api, tls_ctx):
        self.address_family = family
        self.api = api
        self.tls_ctx = tls_ctx
        super().__init__(addr, _Handler)

    def get_request(self):
        sock, addr = super().get_request()
        if self.tls_ctx is not None:
            # the handshake happens in the handler's thread, on first read:
            # a client that never finishes it blocks nobody else
            sock = self.tls_ctx.wrap_socket(sock, server_side=True,
                                            do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        # a client that gave up (the bridge's time bound), a refused
        # certificate: expected here, and counted, not printed
        self.api._errors += 1


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body leave in two writes: without this, Nagle holds the body
    # for the client's delayed ACK (40 ms a look-up, a stand-in artefact)
    disable_nagle_algorithm = True

    def setup(self):
        super().setup()
        if isinstance(self.connection, ssl.SSLSocket):
            try:
                self.connection.do_handshake()
            except (ssl.SSLError, OSError):
                self.server.api._tls_failures += 1
                self.close_connection = True
                raise

    def log_message(self, *a):
        pass

    def do_GET(self):
        api = self.server.api
        raw = self.path
        ident = None
        for prefix in api.prefixes:
            if raw.startswith(prefix):
                # the id ends at the query of the URL template (an id's own
                # "?" is %3F)
                ident = urllib.parse.unquote(raw[len(prefix):].split("?", 1)[0],
                                             errors="surrogateescape")
                break
        with api._lock:
            api.calls[raw] += 1
            api.requests.append({"path": raw, "id": ident, "t": time.monotonic(),
                                 "headers": {k.lower(): v for k, v in self.headers.items()},
                                 "server": self.server.server_address[0]})
            api._active += 1
            api.max_active = max(api.max_active, api._active)
            spec = dict(api.default if ident is None else api.answers.get(ident, api.default))
            delay = api.delay
        try:
            time.sleep(delay + spec.get("delay", 0))
        finally:
            # no longer active once the answer starts: the bridge starts its next
            # look-up only after this one's answer, so max_active counts its
            # concurrency exactly (after the write it would overlap the next)
            with api._lock:
                api._active -= 1
        self._answer(spec)

    def _answer(self, spec):
        if "raw" in spec:
            self.wfile.write(spec["raw"])
            self.wfile.flush()
            self.close_connection = True
            return
        status = spec.get("status", 200)
        if "body" in spec:
            body = spec["body"]
        elif "json" in spec:
            body = json.dumps(spec["json"]).encode()
        else:
            body = json.dumps({"error": http.HTTPStatus(status).phrase}).encode()
        self.send_response(status)
        self.send_header("Content-Type", spec.get("ctype", "application/json"))
        if spec.get("chunked"):
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 8192):
                part = body[i:i + 8192]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
        else:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        self.wfile.flush()


class ApiStandin:
    """The stand-in API on hosts (addresses), one port; tls=(cert, key)
    serves HTTPS. Hosts that cannot be bound (no IPv6) are left out and
    named in self.unbound."""

    def __init__(self, hosts=("127.0.0.1",), port=0, tls=None, prefixes=("/v1/events/",)):
        self.prefixes = tuple(prefixes)
        self.answers = {}
        self.default = {"status": 404}
        self.delay = 0.0
        self.calls = collections.Counter()
        self.requests = []
        self.max_active = 0
        self._active = 0
        self._errors = 0
        self._tls_failures = 0
        self._lock = threading.Lock()
        ctx = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(*tls)
        self.servers, self.unbound = [], []
        for host in hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            try:
                srv = _Server((host, port), family, self, ctx)
            except OSError:
                if not self.servers:
                    raise
                self.unbound.append(host)
                continue
            port = srv.server_address[1]
            self.servers.append(srv)
        self.port = port
        self.threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                         daemon=True) for s in self.servers]
        for t in self.threads:
            t.start()

    @property
    def hosts(self):
        return [s.server_address[0] for s in self.servers]

    @property
    def tls_failures(self):
        return self._tls_failures

    def answer(self, ident, **spec):
        """How to answer the id: status, json, body, ctype, raw, delay, chunked."""
        with self._lock:
            self.answers[ident] = spec

    def event(self, ident, topic="orders/created", **extra):
        """The id is an event of that topic (200, the event as JSON)."""
        doc = {"id": ident, "topic": topic, "created_at": "2026-11-23T12:00:00Z",
               "data": {"id": "ord_42"}}
        doc.update(extra)
        self.answer(ident, status=200, json=doc)

    def reset_max_active(self):
        with self._lock:
            self.max_active = self._active

    def count(self, ident=None):
        """Requests for the id (decoded), or all of them."""
        with self._lock:
            return sum(1 for r in self.requests if ident is None or r["id"] == ident)

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

