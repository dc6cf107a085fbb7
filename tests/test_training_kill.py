"""Training killed with SIGKILL and started again resumes from its checkpoint and ends with the
same weights as a run that was never interrupted (issue 8, part 5): `luigi --module tasks
TrainModel` in a process of its own, killed once its first epoch's checkpoint is on disk."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from fake_cohort import write_fake_warehouse

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["--module", "tasks", "TrainModel", "--run-name", "killed", "--preset", "tiny",
         "--epochs", "6", "--seed", "5", "--losses", '["lambda", "tau", "q"]',
         "--local-scheduler", "--log-level", "WARNING"]


def _config(tmp: Path, warehouse: Path, name: str) -> Path:
    path = tmp / f"{name}.cfg"
    path.write_text(f"[paths]\nwarehouse = {warehouse}\nartifacts = {tmp / name}\n")
    return path


def _train(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "luigi", *TRAIN], cwd=REPO,
                            env={**os.environ, "LUIGI_CONFIG_PATH": str(config)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def _checkpoint(tmp: Path, name: str) -> Path | None:
    found = list((tmp / name).glob("TrainModel/killed/*/checkpoint.pt"))
    return found[0] if found else None


@pytest.mark.slow
def test_sigkilled_training_resumes_to_the_same_weights(tmp_path):
    warehouse = tmp_path / "warehouse"
    write_fake_warehouse(warehouse)

    # Uninterrupted.
    assert _train(_config(tmp_path, warehouse, "whole")).wait(timeout=600) == 0
    whole = torch.load(_checkpoint(tmp_path, "whole"), weights_only=False)

    # Killed as soon as a checkpoint exists (after epoch 1 of 6), then started again.
    config = _config(tmp_path, warehouse, "killed")
    process = _train(config)
    deadline = time.time() + 600
    while _checkpoint(tmp_path, "killed") is None and process.poll() is None:
        assert time.time() < deadline, "no checkpoint within 10 minutes"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    interrupted = torch.load(_checkpoint(tmp_path, "killed"), weights_only=False)
    assert interrupted["epoch"] < 6, "the run finished before it could be killed"
    assert _train(config).wait(timeout=600) == 0
    resumed = torch.load(_checkpoint(tmp_path, "killed"), weights_only=False)

    assert resumed["epoch"] == whole["epoch"] == 6
    for key, value in whole["model"].items():
        assert torch.equal(value, resumed["model"][key]), key
