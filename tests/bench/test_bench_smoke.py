"""test_bench_smoke.py - the benchmark script works and its record check
passes (tests/bench/run --smoke). No timing is asserted: figures from a CI
machine mean nothing, only that every 2xx answer had its record in Kafka.

Environment (set by ctest): WB_SOURCE_DIR, WB_BUILD_DIR, WB_RELEASE_DIR. The
Release tree (WB_RELEASE_DIR) is used when it has the binaries; a sanitizer
build is never reused: then the smoke builds its own Release binaries beside it."""
import os
import subprocess
import sys

SOURCE_DIR = os.environ.get(
    "WB_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
BUILD_DIR = os.environ.get("WB_BUILD_DIR", "")
RELEASE_DIR = os.environ.get("WB_RELEASE_DIR", "")


def _reusable(build_dir):
    """A non-sanitizer build that already has every benchmark binary."""
    cache = os.path.join(build_dir, "CMakeCache.txt")
    if not build_dir or not os.path.exists(cache):
        return False
    with open(cache) as f:
        text = f.read()
    if "WB_SANITIZE:BOOL=ON" in text:
        return False
    bins = ["webhook-bridge", "tests/kafka-standin", "tests/bench/bench-http-ceiling",
            "tests/bench/bench-kafka-ceiling"]
    return all(os.access(os.path.join(build_dir, b), os.X_OK) for b in bins)


def test_smoke_runs_and_every_2xx_has_its_record():
    args = [sys.executable, os.path.join(SOURCE_DIR, "tests", "bench", "run"), "--smoke"]
    if _reusable(RELEASE_DIR):
        args += ["--build-dir", RELEASE_DIR, "--no-build"]
    elif _reusable(BUILD_DIR):
        args += ["--build-dir", BUILD_DIR, "--no-build"]
    else:
        base = BUILD_DIR or os.path.join(SOURCE_DIR, "build-bench")
        args += ["--build-dir", os.path.join(base, "bench-release") if BUILD_DIR else base]
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=540)
    out = p.stdout
    assert p.returncode == 0, out[-6000:]
    assert "record check: PASS" in out, out[-6000:]
    # the table was printed with all three programs
    for name in ("http-ceiling", "kafka-ceiling", "bridge default"):
        assert name in out, out[-6000:]
    # and the spool's table: the Kafka path and the spooled path, both checked
    assert "The spool (every provider spooling" in out, out[-6000:]
    assert "spooled (Kafka down)" in out and "Kafka (spool on, Kafka up)" in out, out[-6000:]
