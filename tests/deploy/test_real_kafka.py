"""Opt-in: docker-compose.yml's Kafka cluster run for real (real_kafka.py).

Skipped unless WB_KAFKA_LIBS names a folder of Apache Kafka jars, made once
with `tests/deploy/real_kafka.py --fetch DIR` (Maven Central, ~55 MB). Takes
a few minutes: three JVM brokers, the topic job, the bridge and the consumer,
then one and two brokers killed."""
import os
import pathlib
import shutil
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from helpers import env_path  # noqa: E402


def test_compose_kafka_for_real():
    libs = os.environ.get("WB_KAFKA_LIBS")
    if not libs or not pathlib.Path(libs).is_dir():
        pytest.skip("opt-in: set WB_KAFKA_LIBS (tests/deploy/real_kafka.py --fetch DIR)")
    if shutil.which("java") is None:
        pytest.skip("java not installed")
    bridge = env_path("WB_BRIDGE")
    if bridge is None:
        pytest.skip("WB_BRIDGE not set")
    consumer = None
    if os.environ.get("WB_BUILD_DIR"):
        c = pathlib.Path(os.environ["WB_BUILD_DIR"]) / "deploy/consumer/webhook-consumer"
        consumer = c if c.is_file() else None
    import real_kafka

    real_kafka.check(pathlib.Path(libs), bridge, consumer)
