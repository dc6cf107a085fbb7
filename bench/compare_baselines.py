"""MonoMSK against its baselines on the warehouse's test subjects (same data, same epochs):

    full      MonoMSK, all losses (λ, τ, q, J + velocity/acceleration)
    mlp       the per-frame MLP baseline (IK and ID as per-frame MLPs, supervised losses)
    kin_only  MonoMSK with losses=[] (kinematics only: IKT pose, velocity, acceleration)

    .venv/bin/python bench/compare_baselines.py --warehouse /work/devdata/warehouse

Prints a table of test-subject errors: torque MAE (N·m/kg, joint moments, pelvis residuals
excluded), GRF MAE (% body weight), joint-angle MAE (deg), MPBLPE (mm, bony landmarks), and the
bony landmarks' velocity (mm/frame) and acceleration (mm/frame²) errors, plus training seconds.
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.config import make_config
from models.data import GRAVITY, grf_columns, load_cohort, split_subjects
from models.dynamics import Multibody
from models.layers import AnatomicalFK
from models.predict import Predictor, torque_name
from models.training import fit
from warehouse import store

VARIANTS = {"full": dict(), "mlp": dict(architecture="mlp"), "kin_only": dict(losses=[]),
            "supervised": dict(losses=["lambda", "tau"]), "multi": dict(output="multi")}


def multibodies(cohort, cache: Path) -> dict[str, Multibody]:
    from osim.export_tree import write_tree

    out = {}
    for s in cohort.subject_ids:
        tree = cache / f"{s}.json"
        if not tree.exists():
            write_tree(cohort.subjects[s]["model"], tree)
        out[s] = Multibody.from_json(tree, dtype=torch.float64)
    return out


def with_overrides(cfg, spec: str):
    """'q=20,lr=0.003': loss weights by their LossWeights name, else TrainConfig fields."""
    weights, fields = {}, {}
    for key, value in (kv.split("=") for kv in spec.split(",") if kv):
        if hasattr(cfg.weights, key):
            weights[key] = float(value)
        else:
            kind = type(getattr(cfg, key))
            fields[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return replace(cfg, weights=replace(cfg.weights, **weights), **fields)


def evaluate(predictor: Predictor, cohort, bodies, root: Path) -> dict[str, float]:
    """Mean errors over the test subjects' trials (frames with ground truth)."""
    rows = []
    coords = cohort.coordinate_names
    joints = [i for i, c in enumerate(coords) if not c.startswith("pelvis")]
    rotational = [i for i, c in enumerate(coords) if not c.endswith(("_tx", "_ty", "_tz"))]
    for trial in cohort.trials:
        if trial.subject not in predictor.split["test"]:
            continue
        info = cohort.subjects[trial.subject]
        markers = store.read_table(root, "markers", [trial.subject])
        markers = markers[markers["trial"] == trial.trial].drop(columns=["subject", "trial"])
        out = predictor.predict(markers, info)
        kin = out["kinematics"].set_index(np.round(out["kinematics"]["time"], 6))
        kinetics = out["kinetics"].set_index(np.round(out["kinetics"]["time"], 6))
        t = np.round(trial.time, 6)
        q = kin.loc[t, coords].to_numpy()
        tau = kinetics.loc[t, [torque_name(c) for c in coords]].to_numpy()
        grf = kinetics.loc[t, grf_columns()].to_numpy().reshape(-1, 2, 3)
        mass = float(info["mass_kg"])
        ok = trial.frame_ok
        fk = AnatomicalFK(bodies[trial.subject], coords)
        n_landmarks = len(fk.landmarks)
        with torch.no_grad():
            p_hat = fk(torch.tensor(q))[:, :n_landmarks].numpy() * 1000   # (F, L, 3) mm
            p_ref = fk(torch.tensor(trial.q))[:, :n_landmarks].numpy() * 1000
        vel = np.linalg.norm(np.diff(p_hat, 1, 0) - np.diff(p_ref, 1, 0), axis=-1).mean()
        acc = np.linalg.norm(np.diff(p_hat, 2, 0) - np.diff(p_ref, 2, 0), axis=-1).mean()
        rows.append({
            "torque_nm_per_kg": np.abs(tau - trial.tau)[ok][:, joints].mean() / mass,
            "grf_pct_bw": 100 * np.abs(grf - trial.grf)[ok & trial.foot_ok.all(1)].mean()
            / (mass * GRAVITY),
            "angle_deg": np.degrees(np.abs(q - trial.q)[:, rotational].mean()),
            "mpblpe_mm": np.linalg.norm(p_hat - p_ref, axis=-1).mean(),
            "vel_mm_per_frame": vel, "acc_mm_per_frame2": acc})
    return pd.DataFrame(rows).mean().to_dict()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", default="data/warehouse")
    ap.add_argument("--preset", default="default")
    ap.add_argument("--epochs", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--variants", nargs="+", default=["full", "mlp", "kin_only"],
                    help=f"of {list(VARIANTS)}; NAME:w=v,... overrides loss weights "
                         "or config fields (e.g. full:q=20,lr=0.003; full:seed=100 re-initialises "
                         "the networks on the same split)")
    ap.add_argument("--out", default="", help="optional JSON of the results")
    args = ap.parse_args()
    root = Path(args.warehouse)
    cohort = load_cohort(root)
    work = Path(tempfile.mkdtemp(prefix="compare_baselines_"))
    bodies = multibodies(cohort, work)
    results = []
    for seed in args.seeds:
        split = split_subjects(cohort.subject_ids, seed)
        for name in args.variants:
            base, _, spec = name.partition(":")
            cfg = make_config(args.preset, seed=seed, epochs=args.epochs, **VARIANTS[base])
            cfg = with_overrides(cfg, spec)
            t0 = time.perf_counter()
            res = fit(cfg, cohort, bodies, work / f"{name.replace(':', '_')}_{seed}.pt", split=split)
            seconds = time.perf_counter() - t0
            metrics = evaluate(Predictor.load(work / f"{name.replace(':', '_')}_{seed}.pt"), cohort, bodies, root)
            results.append({"variant": name, "seed": seed, "train_s": seconds,
                            "fd_share": res["fd_seconds"] / max(seconds, 1e-9), **metrics,
                            "test": ",".join(split["test"])})
            print(json.dumps(results[-1]), flush=True)
    table = pd.DataFrame(results)
    summary = table.drop(columns=["test"]).groupby("variant", sort=False).mean(numeric_only=True)
    with pd.option_context("display.width", 160, "display.precision", 3):
        print(summary.drop(columns=["seed"]))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
