"""TrainModel under `torchrun --nproc_per_node 2` on CPU (gloo): both ranks train on their
halves of the batches with averaged gradients, rank 0 alone writes the run, and it trains."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from fake_cohort import write_fake_warehouse

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_train_model_under_torchrun_two_processes(tmp_path):
    warehouse = tmp_path / "warehouse"
    write_fake_warehouse(warehouse)
    config = tmp_path / "luigi.cfg"
    config.write_text(f"[paths]\nwarehouse = {warehouse}\nartifacts = {tmp_path / 'art'}\n")
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "luigi",
         "--module", "tasks", "TrainModel", "--run-name", "ddp", "--preset", "tiny",
         "--epochs", "3", "--losses", '["lambda", "tau", "q"]', "--local-scheduler",
         "--no-lock",
         "--log-level", "WARNING"],
        cwd=REPO, env={**os.environ, "LUIGI_CONFIG_PATH": str(config), "OMP_NUM_THREADS": "1"},
        capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    (run_json,) = (tmp_path / "art" / "TrainModel" / "ddp").glob("*/run.json")
    run = json.loads(run_json.read_text())
    checkpoint = torch.load(run["checkpoint"], weights_only=False)
    assert checkpoint["world_size"] == 2 and checkpoint["complete"]
    metrics = pd.read_parquet(run["metrics"])
    train = metrics[metrics["split"] == "train"]["loss"].to_numpy()
    assert len(train) == 3 and np.isfinite(train).all()
    assert train[-1] < train[0], f"the loss did not go down: {train}"
