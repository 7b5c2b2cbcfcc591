"""conftest.py (tests/auth) - what the authentication tests share: tests/lib
on the import path, and one Kafka stand-in (a single mock broker) per test
file, skipped when the binaries are not given (run through ctest)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "lib"))
from harness import Standin  # noqa: E402


@pytest.fixture(scope="module")
def standin():
    if not os.environ.get("WB_BRIDGE") or not os.environ.get("WB_STANDIN"):
        pytest.skip("WB_BRIDGE and WB_STANDIN not set (run through ctest)")
    with Standin(brokers=1) as s:
        yield s
