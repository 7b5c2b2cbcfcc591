"""faultproxy.py - a TCP proxy on 127.0.0.1 whose faults tests switch at run
time; the mode applies at once to open connections and to new ones.

  proxy = FaultProxy("127.0.0.1:9092")    # listens on proxy.port / proxy.address
  proxy.passthrough()  forward both ways (the initial mode)
  proxy.delay(ms)      every chunk forwarded ms after it arrived, each direction
                       (latency, not a bandwidth cap: chunks are pipelined)
  proxy.blackhole()    connections stay open and new ones are accepted, but
                       nothing moves either way: a dead path that sends no reset.
                       Data is held, not dropped (a partition that heals delivers
                       it, as TCP would), so the byte stream is never corrupted
  proxy.reset()        every connection reset (RST), new ones refused (the
                       listener is closed; its port stays reserved) until the
                       mode changes
  proxy.mode           ("pass" | "delay" | "blackhole" | "reset", delay in ms)
  proxy.connections    connections open now; proxy.forwarded: bytes forwarded
  proxy.close()        (also a context manager)

asyncio on a background thread; a mode call returns once it is in effect.
reserve_port() is also how tests/lib/kraft.py keeps its brokers' ports."""
import asyncio
import socket
import struct
import threading

CHUNK = 256 * 1024
QUEUED_CHUNKS = 64  # per direction; a slow reader then slows the sender (TCP backpressure)


def reserve_port(port=0):
    """A socket bound to 127.0.0.1:port (0: a free one) with SO_REUSEADDR and
    never listening: while it is open, no bind() without SO_REUSEADDR (other
    tests' free ports) and no outgoing connection can take the port, but a
    server that sets SO_REUSEADDR (Java, asyncio) can still listen on it.
    Closing the socket releases the port."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    return s


def _rst(writer):
    """Closes a connection with a reset rather than a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class FaultProxy:
    """Forwards 127.0.0.1:port to target ("host:port"), with switchable faults."""

    def __init__(self, target, port=0):
        host, _, tport = target.rpartition(":")
        self.target = (host, int(tport))
        self._hold = reserve_port(port)
        self.port = self._hold.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self._mode, self._delay = "pass", 0.0
        self._conns = {}  # serving task -> (client writer, upstream writer)
        self._server = None
        self.forwarded = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"faultproxy-{self.port}")
        self._thread.start()
        self._call(self._init())

    # ---- the test's side -----------------------------------------------------

    @property
    def mode(self):
        return self._mode, round(self._delay * 1000)

    @property
    def connections(self):
        return len(self._conns)

    def passthrough(self):
        self._call(self._set("pass", 0))

    def delay(self, ms):
        self._call(self._set("delay", ms / 1000))

    def blackhole(self):
        self._call(self._set("blackhole", 0))

    def reset(self):
        self._call(self._set("reset", 0))

    def close(self):
        if self._loop.is_closed():
            return
        self._call(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
        self._hold.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    # ---- the loop's side -----------------------------------------------------

    async def _init(self):
        self._flowing = asyncio.Event()
        self._flowing.set()
        await self._listen()

    async def _listen(self):
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                  reuse_address=True, backlog=512)

    async def _set(self, mode, delay):
        self._mode, self._delay = mode, delay
        if mode == "blackhole":
            self._flowing.clear()
        else:
            self._flowing.set()
        if mode == "reset":
            if self._server is not None:
                self._server.close()  # the listening socket is closed at once
                self._server = None
            tasks = list(self._conns)
            for task in tasks:
                for w in self._conns.pop(task):
                    _rst(w)
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        elif self._server is None:
            await self._listen()

    async def _shutdown(self):
        await self._set("reset", 0)
        rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for t in rest:
            t.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def _serve(self, creader, cwriter):
        if self._mode == "reset":  # accepted just before the listener closed
            _rst(cwriter)
            return
        try:
            ureader, uwriter = await asyncio.open_connection(*self.target)
        except OSError:  # nothing behind the proxy: the client sees a reset
            _rst(cwriter)
            return
        if self._mode == "reset":  # reset while connecting
            _rst(cwriter)
            _rst(uwriter)
            return
        task = asyncio.current_task()
        self._conns[task] = (cwriter, uwriter)
        try:
            async with asyncio.TaskGroup() as tg:
                for reader, writer in ((creader, uwriter), (ureader, cwriter)):
                    queue = asyncio.Queue(QUEUED_CHUNKS)
                    tg.create_task(self._pull(reader, queue))
                    tg.create_task(self._push(queue, writer))
        except* (OSError, EOFError):
            pass  # a side went away: so does the other
        finally:
            self._conns.pop(task, None)
            for w in (cwriter, uwriter):
                w.transport.abort()

    async def _pull(self, reader, queue):
        """Reads one direction; each chunk is stamped with when it is due."""
        while True:
            await self._flowing.wait()
            data = await reader.read(CHUNK)
            await queue.put((self._loop.time() + self._delay, data))
            if not data:
                return

    async def _push(self, queue, writer):
        """Writes one direction's chunks once due, never while blackholed."""
        while True:
            due, data = await queue.get()
            wait = due - self._loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._flowing.wait()
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            self.forwarded += len(data)
            await writer.drain()
