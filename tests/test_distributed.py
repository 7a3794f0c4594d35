"""torchrun with two CPU processes (gloo): the model trains, only rank 0 saves,
and the result matches one process trained for the same epochs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

ROOT = Path(__file__).resolve().parents[1]
# A softplus code has no dead units, so runs differ by seed far less than a ReLU
# code's (measured over 4 seeds: 4% against 48%), which a 5% comparison needs.
ARGS = [
    "train",
    "--preset",
    "basic-softplus",
    "--dataset",
    "digits",
    "--epochs",
    "60",
    "--batch-size",
    "64",
    "--latent-dim",
    "16",
    "--json",
    "--device",
    "cpu",
]


def run(cmd, store):
    env = {**os.environ, "AECORE_STORE": str(store), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout[proc.stdout.index("{") :])


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="torch built without gloo")
def test_two_processes_train_save_once_and_match_one(tmp_path):
    two = run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--standalone",
            "-m",
            "aecore",
            *ARGS,
            "--name",
            "ddp",
        ],
        tmp_path / "store2",
    )
    one = run([sys.executable, "-m", "aecore", *ARGS, "--name", "single"], tmp_path / "store1")

    assert two["status"] == "done" and two["epochs"] == 60
    saved = sorted(p.name for p in (tmp_path / "store2").iterdir() if not p.name.startswith("."))
    assert saved == ["ddp"]  # rank 1 wrote nothing
    config = json.loads((tmp_path / "store2" / "ddp" / "config.json").read_text())
    assert config["world_size"] == 2
    # Trained, not just saved: far below the error of the untrained start.
    history = json.loads((tmp_path / "store2" / "ddp" / "history.json").read_text())
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    assert abs(two["test_mse"] - one["test_mse"]) <= 0.05 * one["test_mse"]
