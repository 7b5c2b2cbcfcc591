"""Shared helpers for the deployment tests (tests/deploy/), imported by them.

ctest runs each test_*.py here with WB_SOURCE_DIR (repository root),
WB_BUILD_DIR, WB_BRIDGE (webhook-bridge binary) and WB_STANDIN (the Kafka
stand-in) set; run by hand, the defaults below find the repository from this
file and leave the binaries unset (their tests then skip with a reason)."""
import os
import pathlib
import shutil
import subprocess

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("WB_SOURCE_DIR") or pathlib.Path(__file__).resolve().parents[2])
TESTS_DIR = SOURCE_DIR / "tests"
NODE_MODULES = TESTS_DIR / "node_modules"


def env_path(name):
    """The executable an environment variable names, or None."""
    value = os.environ.get(name)
    if value and os.path.isfile(value) and os.access(value, os.X_OK):
        return pathlib.Path(value)
    return None


def require_node_module(name):
    """Skips unless tests/node_modules has NAME (`cd tests && npm ci`)."""
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    if not (NODE_MODULES / name).is_dir():
        pytest.skip(f"tests/node_modules/{name} missing: run `cd tests && npm ci`")


def run(cmd, **kw):
    """subprocess.run with text output captured and a time limit."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(cmd, **kw)


def load_yaml_docs(text):
    import yaml

    return [d for d in yaml.safe_load_all(text) if d is not None]

