"""loadgen.py - many concurrent HTTP/1.1 webhook requests from one process
(asyncio, one connection per request), returning every status and body, so
that tests can check each receipt against Kafka."""
import asyncio
import json
import resource


def raise_fd_limit(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < min(n, hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(n, hard), hard))


async def _one(port, path, body, timeout, start):
    await start.wait()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                                timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return (None, repr(e))
    try:
        writer.write(b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                     % (path.encode(), len(body), body))
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), timeout)
    except (OSError, asyncio.TimeoutError) as e:
        return (None, repr(e))
    finally:
        writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    if not head:
        return (None, "no answer")
    status = int(head.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in head.lower():
        return (status, "chunked?")
    return (status, payload.decode())


async def _run(port, requests_, timeout):
    start = asyncio.Event()
    tasks = [asyncio.ensure_future(_one(port, p, b, timeout, start)) for p, b in requests_]
    await asyncio.sleep(0)
    start.set()
    return await asyncio.gather(*tasks)


def burst(port, requests_, timeout=60):
    """requests_: [(path, body_bytes)]; all sent at once. Returns [(status, text)]."""
    raise_fd_limit(len(requests_) + 256)
    return asyncio.run(_run(port, requests_, timeout))


def receipts(results):
    return [json.loads(t) for s, t in results if s == 200]
