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

    real_kafka.check(bridge, consumer)
