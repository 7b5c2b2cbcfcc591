"""docker-compose.yml's Kafka cluster run for real (real_kafka.py): three JVM
brokers from the cached jars (deploy/install-deps.sh --test fetches them), the
compose health checks and topic job, the bridge and the consumer, then one and
two brokers killed. Takes a minute or two. Without the jars or java it skips,
and fails instead under CI=true or WB_REQUIRE_REAL_KAFKA=1 (kraft.require())."""
import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "lib")]
from helpers import env_path  # noqa: E402
import kraft  # noqa: E402


def test_compose_kafka_for_real():
    kraft.require()
    bridge = env_path("WB_BRIDGE")
    if bridge is None:
        pytest.skip("WB_BRIDGE not set (run through ctest)")
    consumer = None
    if os.environ.get("WB_BUILD_DIR"):
        c = pathlib.Path(os.environ["WB_BUILD_DIR"]) / "deploy/consumer/webhook-consumer"
        consumer = c if c.is_file() else None
    import real_kafka

    real_kafka.check(bridge, consumer, also=examples_on)


def examples_on(bootstrap, log):
    """The consuming services of deploy/examples (Python, Go, Java, as
    shipped) read what a bridge writes to this real cluster: their own tests
    (tests/examples) with WB_EXAMPLES_BROKERS, which makes them write and
    read there instead of on a stand-in."""
    import subprocess
    import time

    examples = HERE.parent / "examples"
    t = time.monotonic()
    res = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "-k", "example and not as_shipped and not bad_options",
         "test_python.py", "test_go.py", "test_java.py"],
        cwd=examples, env={**os.environ, "WB_EXAMPLES_BROKERS": bootstrap},
        capture_output=True, text=True, timeout=900)
    tail = (res.stdout + res.stderr)[-6000:]
    assert res.returncode == 0, tail
    import re

    assert re.search(r"\b3 passed", res.stdout) and "skipped" not in res.stdout, tail
    log(f"the Python, Go and Java examples read the bridge's records on this cluster "
        f"({time.monotonic() - t:.0f} s)")
