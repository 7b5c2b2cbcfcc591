"""The Go example (deploy/examples/go: the CloudEvents SDK's Kafka binding
kafka_sarama over IBM/sarama) builds, offline, and reads what the bridge
wrote: every provider's records, a dead letter, a redelivery recognised as a
duplicate, a bounded dedup store, offsets committed, SIGTERM leaving the group
(examples.py says what is checked), on kafka-standin with the example's
default protocol version (Kafka 2.1.0's; Debian's librdkafka 2.0.2 mock served
only older ones, and the test had to tell sarama 0.10.2).

Its modules (go.sum) are in Go's module cache once deploy/install-deps.sh
--test ran `go mod download`; the build here runs with GOPROXY=off."""
import os
import pathlib
import shutil
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import pytest  # noqa: E402
from examples import (BUILD, EXAMPLES, check_example, check_rejects_bad_options,  # noqa: E402,F401
                      run_tool, unavailable, written)

@pytest.fixture(scope="module")
def consumer():
    go = shutil.which("go")
    if go is None:
        unavailable("go is not installed")
    out = BUILD / "go" / "consumer"
    env = dict(os.environ, GOPROXY="off", GOFLAGS="-mod=readonly -buildvcs=false")
    run_tool([go, "build", "-o", out, "."], cwd=EXAMPLES / "go", env=env)
    return [out]


# new topics within a second (run 3 of check_example)
REFRESH = ["--metadata-refresh", "1s"]


def test_go_example(written, consumer):
    """As shipped (Kafka protocol 2.1.0), on kafka-standin."""
    bootstrap, writes, _ = written
    check_example(consumer, bootstrap, writes, "example-go", refresh_args=REFRESH)


def test_go_example_rejects_bad_options(consumer):
    check_rejects_bad_options(consumer)
