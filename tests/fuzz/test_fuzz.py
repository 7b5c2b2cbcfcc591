"""test_fuzz.py - runs every libFuzzer target (tests/fuzz/run.sh) for a short
while: 10 s each, about a minute in all with the builds. Fails when the build
fails or the fuzzer reports anything (a crash, a failed CHECK, a leak, a
timeout); the failure shows libFuzzer's report and where run.sh kept the
input. Longer runs: tests/fuzz/run.sh all 600."""
import os
import pathlib
import subprocess

import pytest

SECONDS = 10
TARGETS = ["json", "auth", "provider", "route", "config", "lookup"]


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz(target):
    root = pathlib.Path(os.environ.get("WB_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
    run = root / "tests" / "fuzz" / "run.sh"
    proc = subprocess.run(
        ["/bin/sh", str(run), target, str(SECONDS)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=SECONDS + 240,  # build time included
    )
    out = proc.stdout.decode("utf-8", "replace")
    print(out[-2000:])
    assert proc.returncode == 0, out[-6000:]
    assert "findings: 0, exit 0" in out, out[-6000:]
