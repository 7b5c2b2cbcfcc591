"""test_fuzz_json.py - runs the json.c fuzzer (tests/fuzz/run.sh) for 15 s.

A failure prints libFuzzer's report, including where the crashing input was
kept."""
import os
import pathlib
import subprocess

SECONDS = 15


def test_fuzz_json_15s():
    root = pathlib.Path(os.environ.get("WB_SOURCE_DIR", pathlib.Path(__file__).resolve().parents[2]))
    run = root / "tests" / "fuzz" / "run.sh"
    proc = subprocess.run(
        ["/bin/sh", str(run), str(SECONDS)],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=SECONDS + 240,  # build time included
    )
    out = proc.stdout.decode("utf-8", "replace")
    assert proc.returncode == 0, out[-6000:]
    assert "Done " in out, out[-6000:]
