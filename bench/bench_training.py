"""Speed of MonoMSK training and inference on this machine.

    .venv/bin/python bench/bench_training.py --warehouse /work/devdata/warehouse

Prints, for the default preset: training windows per second in each phase (ground-truth and
predicted embeddings) for MonoMSK and for the per-frame MLP baseline measured in the same run
(their ratio), the share of MonoMSK's training time spent in the FD/FK layers, and inference
frames per second for a 10 s trial at 100 Hz (against OpenCap's ~35 min of simulation per
trial). Without a warehouse it builds the tests' synthetic one (4 built-in subjects, 2 s each).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.config import make_config
from models.data import load_cohort, make_windows
from models.dynamics import Multibody
from models.predict import Predictor
from models.training import fit
from warehouse import store

OPENCAP_SECONDS_PER_TRIAL = 35 * 60


def cohort_and_bodies(warehouse: str, work: Path):
    root = Path(warehouse)
    if not (root / "subjects.parquet").exists():
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from fake_cohort import write_fake_warehouse  # noqa: E402 (a test helper)

        root = work / "warehouse"
        print(f"no warehouse at {warehouse}: building a synthetic one in {root}")
        write_fake_warehouse(root, ("P01", "P02", "P03", "P04"), frames=200)
    from osim.export_tree import write_tree

    cohort = load_cohort(root)
    bodies = {}
    for s in cohort.subject_ids:
        tree = work / f"{s}.json"
        write_tree(cohort.subjects[s]["model"], tree)
        bodies[s] = Multibody.from_json(tree)
    return root, cohort, bodies


def ten_second_trial(root: Path, cohort) -> pd.DataFrame:
    """A 10 s, 100 Hz marker trial: one warehouse trial played forwards and backwards."""
    t = cohort.trials[0]
    mk = store.read_table(root, "markers", [t.subject])
    mk = mk[mk["trial"] == t.trial].drop(columns=["subject", "trial"]).sort_values("time")
    values = mk.drop(columns="time").to_numpy()
    loop = np.concatenate([values, values[::-1]])
    reps = int(np.ceil(1000 / len(loop)))
    out = pd.DataFrame(np.tile(loop, (reps, 1))[:1000], columns=mk.columns[1:])
    out.insert(0, "time", np.arange(1000) / 100.0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", default="data/warehouse")
    ap.add_argument("--preset", default="default")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench_training_"))
    root, cohort, bodies = cohort_and_bodies(args.warehouse, work)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()} -> 1 (config), "
          f"{len(cohort.subject_ids)} subjects, {len(cohort.trials)} trials")
    rates = {}
    for arch in ("monomsk", "mlp"):
        cfg = make_config(args.preset, architecture=arch, epochs=2)  # one epoch per phase
        res = fit(cfg, cohort, bodies, work / f"{arch}.pt")
        n = sum(len(w) for w in make_windows(cohort, res["split"]["train"], cfg.window,
                                             cfg.stride))
        train_rows = [r for r in res["metrics"] if r["split"] == "train"]
        rates[arch] = {r["phase"]: n / r["seconds"] for r in train_rows}
        fd = res["fd_seconds"] / res["seconds"] if arch == "monomsk" else 0.0
        print(f"{arch:8s} train windows/s: " + ", ".join(
            f"{p} {v:.1f}" for p, v in rates[arch].items())
            + f"  ({n} windows of {cfg.window} frames per epoch); "
            f"FD+FK share of wall time {100 * fd:.0f}%")
    for phase in rates["monomsk"]:
        print(f"ratio monomsk/mlp windows/s ({phase}): "
              f"{rates['monomsk'][phase] / rates['mlp'][phase]:.3f}")
    trial = ten_second_trial(root, cohort)
    for arch in ("monomsk", "mlp"):
        predictor = Predictor.load(work / f"{arch}.pt")
        predictor.predict(trial.iloc[:50], {"mass_kg": 70.0})  # warm-up
        t0 = time.perf_counter()
        predictor.predict(trial, {"mass_kg": 70.0})
        s = time.perf_counter() - t0
        print(f"{arch:8s} inference, 10 s trial (1000 frames): {s:.3f} s = "
              f"{1000 / s:.0f} frames/s; {OPENCAP_SECONDS_PER_TRIAL / s:.0f}x faster than "
              f"OpenCap's ~35 min simulation")


if __name__ == "__main__":
    main()
