"""The compose stack as README's "Local stack" tells a user to run it, on a
real Docker engine, then README's durability drill for real.

1. README's commands as written (parsed from README.md, so that the two stay
   in step): `docker compose up --build -d`, every service healthy and
   kafka-init exited 0 within a bound; README's three curl examples, each
   answered 200 with an offset; each record in `docker compose logs consumer`
   by its id; README's kcat line from the host reads the Piriod record, and
   every example is at its offset. Prints the time from `up` to the first 200.
2. The drill under a steady load from the three providers (faults.py's load
   with the stack's tokens): `docker compose stop kafka-2` (every webhook
   200), `stop kafka-1` (Shoperti and BonifiQ failure codes with Retry-After,
   never 200; Piriod 200 spooled), `start kafka-1 kafka-2` (spooled records
   replayed), `docker kill` of the container leading most partitions. Every
   200 read back at its offset, every spooled one found by id: 0 lost.
3. `docker kill -s KILL` of the bridge holding spooled records, then
   `docker compose up -d bridge`: the spool volume is replayed.
4. `docker compose down` and `up -d`: topics and records kept by the volumes.

Traffic from here goes to 127.0.0.1 only (the compose file publishes there).
The stack is the checkout's compose project; it is taken down with its
volumes at the end (`down -v`); images stay (the layer cache of the next run).
"""
import json
import pathlib
import re
import sys
import time

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "lib"))
import dockerenv  # noqa: E402
import dockerload  # noqa: E402
import harness  # noqa: E402
from dockerenv import SOURCE_DIR, compose, docker, shell  # noqa: E402

BOOTSTRAP = "127.0.0.1:29092,127.0.0.1:29093,127.0.0.1:29094"
UP_BOUND_S = 300        # `up --build -d` until every service is healthy (cached images)
RECEIPTS = []           # every 200 with an offset the test got, checked again after down/up
SPOOLED = []            # every 200 "spooled"
PIRIOD_TOPICS = ["webhooks.piriod.payment.created", "webhooks.piriod.invoice.paid"]


def report(text):
    dockerenv.report("stack", text)


def readme_local_stack():
    text = (SOURCE_DIR / "README.md").read_text()
    m = re.search(r"^## Local stack.*?(?=^## )", text, re.S | re.M)
    assert m, "README.md has no \"Local stack\" section"
    return m.group(0)


def readme_commands(section):
    """Every shell command of the section's ```sh blocks, continuation lines
    joined, comments dropped."""
    cmds = []
    for block in re.findall(r"```sh\n(.*?)```", section, re.S):
        block = re.sub(r"\\\n\s*", " ", block)
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                cmds.append(re.sub(r"\s+#\s.*$", "", line).strip())
    return cmds


def readme_inline(section, prefix):
    """Inline `code` of the section that starts with prefix."""
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    return [c for c in re.findall(r"`([^`\n]+)`", prose) if c.startswith(prefix)]


@pytest.fixture(scope="module")
def stack():
    engine = dockerenv.require()
    compose("down", "-v", "--remove-orphans", timeout=300, check=False)
    leftovers = dockerenv.Leftovers()
    yield engine
    print("\n" + compose("ps", "-a", check=False).stdout)
    if not dockerenv.keep():
        compose("down", "-v", "--remove-orphans", timeout=300, check=False)
        leftovers.clean()


def post_json(cmd):
    """A README curl line, with -w so that the status is known too."""
    p = shell(cmd + " -w '\\n%{http_code}'", timeout=60, check=False)
    body, _, code = p.stdout.rpartition("\n")
    try:
        return int(code), json.loads(body) if body.strip() else None
    except ValueError:
        return int(code or 0), body


def test_readme_local_stack(stack):
    section = readme_local_stack()
    cmds = readme_commands(section)
    up = [c for c in cmds if c.startswith("docker compose up")]
    assert up == ["docker compose up --build -d"], up
    curls = [c for c in cmds if c.startswith("curl ") and "/webhooks/" in c]
    assert len(curls) == 3, curls
    for c in curls:
        assert "localhost:8080" in c
    had = dockerenv.image_exists("webhook-bridge:local")

    t0 = time.monotonic()
    shell(up[0], timeout=1800)
    t_up = time.monotonic() - t0
    # README: `docker compose ps` until bridge is healthy; the first webhook
    # as soon as the bridge answers
    first = first_offset = None
    while time.monotonic() - t0 < UP_BOUND_S:
        code, receipt = post_json(curls[0])
        if code == 200 and first is None:
            first = time.monotonic() - t0
        if code == 200 and "offset" not in receipt:
            # Piriod spools here: a first record Kafka was slow to take is a
            # 200 "spooled" (checked by id after the drill); README's example
            # shows the usual receipt, with its offset
            report(f"\nPiriod example answered 200 spooled: {receipt}")
            SPOOLED.append(receipt)
        elif code == 200:
            first_offset = time.monotonic() - t0
            break
        time.sleep(0.5)
    assert first_offset is not None, compose("ps", "-a").stdout
    healthy = dockerenv.wait_stack(timeout=max(10, UP_BOUND_S - (time.monotonic() - t0)))
    report(f"\n`docker compose up --build -d` returned after {t_up:.1f} s "
          f"({'images cached' if had else 'no bridge image yet: built cold'}); first 200 "
          f"{first:.1f} s after up (with an offset {first_offset:.1f} s); every service healthy "
          f"{time.monotonic() - t0:.1f} s after up")
    assert healthy is not None
    report(shell("docker compose ps").stdout)

    receipts = [receipt]
    for c in curls[1:]:
        code, receipt = post_json(c)
        assert code == 200, (c, receipt)
        receipts.append(receipt)
    for r in receipts:
        report(f"  {r}")
    for r in receipts:
        assert isinstance(r.get("offset"), int) and r["offset"] >= 0, r
    RECEIPTS.extend(receipts)

    # each record in the consumer's log, by id
    deadline = time.monotonic() + 60
    while True:
        log = shell("docker compose logs consumer").stdout
        missing = [r["id"] for r in receipts if f"id={r['id']}" not in log]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert not missing, log[-3000:]

    # README's kcat line from the host, then every example at its offset
    kcat = [c for c in readme_inline(section, "kcat ")]
    assert kcat, "README has no kcat line"
    out = shell(kcat[0], timeout=60).stdout
    assert receipts[0]["id"] in out, out[-2000:]
    for r in receipts:
        out = shell(f"kcat -b localhost:29092 -C -t {r['topic']} -p {r['partition']} "
                    f"-o {r['offset']} -c 1 -e -f '%o %s\\n'", timeout=60).stdout
        assert out.startswith(f"{r['offset']} ") and r["id"] in out, out


def leaders_by_broker(topics):
    from confluent_kafka.admin import AdminClient
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    md = admin.list_topics(timeout=10)
    count = {}
    for t in topics:
        for p in md.topics[t].partitions.values():
            count[p.leader] = count.get(p.leader, 0) + 1
    return count


def wait_healthy(services, timeout=300):
    return dockerenv.wait_stack(timeout=timeout, services=services)


def record(result):
    RECEIPTS.extend(a.receipt for a in result.answers if a.status == 200 and
                    not a.receipt.get("spooled"))
    SPOOLED.extend(a.receipt for a in result.answers if a.status == 200 and
                   a.receipt.get("spooled"))


def test_durability_drill(stack):
    """README's drill for real, under a steady load from the three providers."""
    load = dockerload.StackLoad(senders=1, pause=0.02).start()
    time.sleep(5)
    t_k2 = load.mark("stop kafka-2")
    compose("stop", "kafka-2", timeout=120)
    t_k2_done = load.mark("kafka-2 stopped")
    time.sleep(15)
    t_k1 = load.mark("stop kafka-1")
    compose("stop", "kafka-1", timeout=120)
    t_k1_done = load.mark("kafka-1 stopped")
    time.sleep(15)
    t_start = load.mark("start kafka-1 kafka-2")
    compose("start", "kafka-1", "kafka-2", timeout=120)
    wait_healthy(["kafka-0", "kafka-1", "kafka-2"])
    load.mark("all healthy")
    time.sleep(10)
    topics = [t for t in harness.all_topics(BOOTSTRAP) if t.startswith("webhooks.")]
    leaders = leaders_by_broker(topics)
    busiest = max(leaders, key=leaders.get)
    service = f"kafka-{busiest}"
    t_kill = load.mark(f"docker kill {service} ({leaders[busiest]} leaderships)")
    docker("kill", dockerenv.container(service))
    time.sleep(20)
    load.mark(f"start {service}")
    compose("start", service, timeout=120)
    wait_healthy([service])
    load.mark(f"{service} healthy")
    time.sleep(5)
    result = load.stop(BOOTSTRAP, "compose stack: the durability drill")
    spooled_found = result.spooled_found(BOOTSTRAP, PIRIOD_TOPICS)
    report("\n" + result.table(extra=[f"leaderships before the kill: {leaders}",
                                     f"spooled 200s: {len(result.spooled)}, "
                                     f"found in Kafka by id: {spooled_found}"]))
    record(result)

    # stop kafka-2: every webhook still 200 (two in-sync replicas left)
    window = dockerload.between(result, t_k2, t_k1)
    assert window and all(a.status == 200 for a in window), \
        sorted({(a.provider, a.status, a.error) for a in window if a.status != 200}, key=str)
    # stop kafka-1: Shoperti and BonifiQ never 200 (failure codes with
    # Retry-After, checked by the load), Piriod 200 (spooled)
    for p in ("shoperti", "bonifiq"):
        seen = dockerload.between(result, t_k1_done, t_start, p)
        assert all(a.status in harness.FAILURE_STATUSES for a in seen), \
            sorted({(a.status, a.error) for a in seen}, key=str)
    piriod = dockerload.between(result, t_k1_done, t_start, "piriod")
    assert piriod and all(a.status == 200 and a.receipt.get("spooled") for a in piriod), \
        sorted({(a.status, a.error) for a in piriod}, key=str)
    assert result.spooled, "no Piriod webhook was spooled with two brokers down"
    assert spooled_found == len(result.spooled), "spooled records missing from Kafka"
    assert result.wrong == 0 and not result.misplaced
    assert result.lost == 0
    assert t_k2_done and t_kill


def test_bridge_killed_with_spooled_records(stack):
    """`docker kill -s KILL` of the bridge while its spool holds records (two
    brokers down), then `docker compose up -d bridge`: replayed from the
    bridge-spool volume."""
    compose("stop", "kafka-1", "kafka-2", timeout=120)
    load = dockerload.StackLoad(senders=1, pause=0.05, providers=("piriod",)).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with load._lock:
            n = sum(1 for a in load.answers if a.status == 200 and a.receipt.get("spooled"))
        if n >= 30:
            break
        time.sleep(0.5)
    load.mark("docker kill -s KILL bridge")
    docker("kill", "-s", "KILL", dockerenv.container("bridge"))
    time.sleep(2)
    result = load.stop(BOOTSTRAP, "compose stack: bridge SIGKILLed with spooled records")
    compose("start", "kafka-1", "kafka-2", timeout=120)
    compose("up", "-d", "bridge", timeout=300)
    wait_healthy(["kafka-0", "kafka-1", "kafka-2", "bridge"])
    found = result.spooled_found(BOOTSTRAP, PIRIOD_TOPICS)
    report("\n" + result.table(extra=[f"spooled 200s: {len(result.spooled)}, found in Kafka "
                                     f"by id after `up -d bridge`: {found}"]))
    record(result)
    assert len(result.spooled) >= 30
    assert found == len(result.spooled)
    assert result.lost == 0


def test_down_up_keeps_the_records(stack):
    t = time.monotonic()
    compose("down", timeout=300)
    compose("up", "-d", timeout=600)
    took = dockerenv.wait_stack(timeout=UP_BOUND_S)
    report(f"\n`docker compose down` then `up -d`: healthy after {time.monotonic() - t:.1f} s "
          f"({took:.1f} s after up returned)")
    got = harness.read_receipts(BOOTSTRAP, RECEIPTS, timeout=120)
    by_id = 0
    missing = [r for r in RECEIPTS if (r["topic"], r["partition"], r["offset"]) not in got]
    if missing:
        by_id = len(harness.find_ids(BOOTSTRAP, missing))
    spooled = dockerload.ids_in(BOOTSTRAP, PIRIOD_TOPICS, [r["id"] for r in SPOOLED])
    report(f"records after down/up: {len(RECEIPTS)} answered 200 with an offset, {len(got)} read "
          f"back at their offsets, {by_id} found elsewhere by id; {len(SPOOLED)} answered 200 "
          f"spooled, {len(spooled)} found by id; lost {len(missing) - by_id + len(SPOOLED) - len(spooled)}")
    assert not missing, missing[:5]
    assert len(spooled) == len(SPOOLED)
