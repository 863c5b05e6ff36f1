"""``posediff bench`` runs end to end (its numbers are printed, not asserted: targets live in the table)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_assist_rows_run_through_a_real_server():
    out = subprocess.run([sys.executable, "-m", "backend", "bench", "--only", "assist"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    for row in ("assist update over HTTP (median)", "joint motion / pin motion"):
        assert row in out.stdout, out.stdout
