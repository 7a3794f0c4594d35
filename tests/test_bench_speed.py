"""The README's speed benchmark runs end to end (a smoke run: one preset, short windows).

It asserts what the run must produce, never how fast: speed is a benchmark, not a test.
Marked slow (minutes of training on a small CPU): run it with ``-m slow``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_speed_bench_quick_run_writes_its_table_and_json(tmp_path):
    out = tmp_path / "results"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "speed.py"),
        "--quick",
        "--presets",
        "vanilla",
        "--n",
        "2000",
        "--skip",
        "pythae",
        "quality",
        "gemm",
        "--no-ompdefault",
        "--threads",
        "1",
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((out / "speed-quick-latest.json").read_text())
    row = doc["training"]["vanilla"]
    ips = row["images_per_s"]
    # every variant ran and trained something, the dashboard's one in its own training process
    for variant in ("aecore", "aecore-dashboard", "seeds", "seeds-passive", "tensords"):
        assert ips[variant] > 0, (variant, row["windows"].get(variant))
    dash = row["windows"]["aecore-dashboard"]
    assert all(w["page_polls"] >= 1 and not w["page_errors"] for w in dash), dash
    assert row["latency"]["decode_p50_ms"] > 0
    assert "| vanilla" in proc.stdout and "dashboard/CLI" in proc.stdout
