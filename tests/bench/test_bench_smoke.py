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


def _build_args():
    """--build-dir (and --no-build) for the run: a reusable Release tree, or one of its own."""
    if _reusable(RELEASE_DIR):
        return ["--build-dir", RELEASE_DIR, "--no-build"]
    if _reusable(BUILD_DIR):
        return ["--build-dir", BUILD_DIR, "--no-build"]
    base = BUILD_DIR or os.path.join(SOURCE_DIR, "build-bench")
    return ["--build-dir", os.path.join(base, "bench-release") if BUILD_DIR else base]


def _run(*extra):
    args = [sys.executable, os.path.join(SOURCE_DIR, "tests", "bench", "run"), "--smoke"]
    args += _build_args() + list(extra)
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=540)
    return p, p.stdout


def test_smoke_runs_and_every_2xx_has_its_record():
    p, out = _run()
    assert p.returncode == 0, out[-6000:]
    assert "record check: PASS" in out, out[-6000:]
    # the table was printed with all three programs
    for name in ("http-ceiling", "kafka-ceiling", "bridge default"):
        assert name in out, out[-6000:]
    # and the spool's table: the Kafka path and the spooled path, both checked
    assert "The spool (every provider spooling" in out, out[-6000:]
    assert "spooled (Kafka down)" in out and "Kafka (spool on, Kafka up)" in out, out[-6000:]


def test_smoke_compression_and_release_steps():
    """--compression (each codec side by side, the 1 MiB bodies against the
    broker's limit) and --compare (releases side by side, the first record to
    a new topic), briefly: the modes the README's tables come from still run."""
    build = _build_args()
    bridge = os.path.join(build[1], "webhook-bridge")
    p, out = _run("--duration", "1", "--compression", "none,lz4,zstd", "--compare",
                  f"built={bridge}")
    assert p.returncode == 0, out[-6000:]
    assert "record check: PASS" in out, out[-6000:]
    assert "Compression (compression.type" in out, out[-6000:]
    for codec in ("none", "lz4", "zstd"):
        assert f" 1MiB {codec} " in out and f" 300B {codec} " in out, out[-6000:]
    # one webhook of exactly max_body per codec and body, each answered and
    # its bytes on the wire measured; zstd keeps even random text under the limit
    limit = out[out.index("Under the broker's limit"):]
    assert limit.count(" 200 ") == 12, limit[:3000]
    zstd_ascii = [ln for ln in limit.splitlines()
                  if ln.startswith("random printable ASCII") and " zstd " in ln]
    assert zstd_ascii and zstd_ascii[0].rstrip().endswith("yes"), limit[:3000]
    assert "librdkafka releases side by side" in out, out[-6000:]
    assert "First record to a topic" in out and "built" in out, out[-6000:]
