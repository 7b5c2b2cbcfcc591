"""The Python example (deploy/examples/python: the CloudEvents SDK's Kafka
binding over confluent-kafka) reads what the bridge wrote: every provider's
records, a dead letter, a redelivery recognised as a duplicate, a bounded
dedup store, offsets committed, SIGTERM leaving the group (examples.py says
what is checked).

Its packages (deploy/examples/python/requirements.txt) are in the virtual
environment deploy/install-deps.sh --test makes, .cache/venv
(WB_EXAMPLES_VENV moves it)."""
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from examples import (EXAMPLES, check_example, check_rejects_bad_options,  # noqa: E402,F401
                      venv_python, written)

# new topics within a second (run 3 of check_example)
REFRESH = ["-X", "topic.metadata.refresh.interval.ms=1000"]


def command():
    return [venv_python(), EXAMPLES / "python" / "consumer.py"]


def test_python_example(written):
    bootstrap, writes, _ = written
    check_example(command(), bootstrap, writes, "example-python", refresh_args=REFRESH)


def test_python_example_rejects_bad_options():
    check_rejects_bad_options(command())
