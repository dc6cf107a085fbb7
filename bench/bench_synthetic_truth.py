"""How well the ground truth recovers a synthetic walk's known forces.

A synthetic walk's truth is a solution of the equations of motion (osim/synthetic_dynamics.py),
written beside the markers as `<raw>/<subject>/_truth/<trial>_kinetics.sto`. BuildDataset then
recovers it from the noisy markers (IK, then Moco). This prints, per walking trial, the RMSE of
the warehouse's GRFs (% body weight, both feet pooled) and joint moments (N·m, pelvis residuals
excluded) against the generation's, over the whole trial and after its first `--skip` seconds.

    .venv/bin/python bench/bench_synthetic_truth.py --warehouse data/warehouse --raw data/raw
"""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from pipeline.opensim_files import read_sto
from pipeline.quality import GRAVITY
from warehouse.store import read_table


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--skip", type=float, default=0.05, help="seconds left out at the start")
    args = ap.parse_args()
    kinetics = read_table(args.warehouse, "kinetics")
    mass = pd.read_parquet(f"{args.warehouse}/subjects.parquet").set_index("subject")["mass_kg"]
    for (subject, trial), ours in kinetics.groupby(["subject", "trial"]):
        if not trial.startswith("walk"):
            continue
        ours = ours.set_index("time")
        truth = read_sto(f"{args.raw}/{subject}/_truth/{trial}_kinetics.sto")
        weight = mass[subject] * GRAVITY
        common = truth.index.intersection(ours.index)
        for label, times in (("whole trial", common),
                             (f"after {args.skip:g} s", common[common >= common[0] + args.skip - 1e-9])):
            grf = {axis: 100 * rmse(np.concatenate([ours.loc[times, f"ground_force_{s}_v{axis}"]
                                                    for s in "rl"]),
                                    np.concatenate([truth.loc[times, f"ground_force_{s}_v{axis}"]
                                                    for s in "rl"])) / weight
                   for axis in "xyz"}
            moments = {c: rmse(ours.loc[times, c], truth.loc[times, c]) for c in ours.columns
                       if c.endswith("_moment") and not c.startswith("pelvis")}
            worst = max(moments, key=moments.get)
            print(f"{subject} {trial} {label:12s} GRF vertical {grf['y']:5.1f}% BW, fore-aft "
                  f"{grf['x']:4.1f}%, lateral {grf['z']:4.1f}%; moments median "
                  f"{np.median(list(moments.values())):5.1f} N·m, worst {moments[worst]:5.1f} "
                  f"({worst})")


if __name__ == "__main__":
    main()
