"""Evaluate a trained predictor against the warehouse's ground truth on its test subjects.

    evaluation = evaluate_predictor(Predictor.load(checkpoint), warehouse_root)
    write_evaluation(evaluation, report_dir, {"run": "nightly"})   # metrics.json + Parquet

Metrics per trial (models/metrics.py), then frame-weighted per subject, per activity and overall;
the representative trial of each activity (median torque error) keeps its predicted and reference
kinetics for the report's curves. The predictor is anything with `split`, and
`predict(markers, subject) -> {"kinematics", "kinetics"}` (models/predict.py's `Predictor`).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.dynamics import Multibody
from models.metrics import GRF_COLUMNS, METRIC_KEYS, trial_metrics, weighted_summary
from pipeline.errors import ModelError
from pipeline.raw import infer_activity
from warehouse import store
from warehouse.store import write_atomic

ANGLE_PREFIX, TORQUE_PREFIX = "angle_deg.", "torque_nm_per_kg."
UNITS = {"mpblpe_mm": "mm", "mae_angle_deg": "deg", "accel_err_mm_per_frame2": "mm/frame^2",
         "vel_err_mm_per_frame": "mm/frame", "mae_grf_bw": "body weight (m g)",
         "mae_torque_nm_per_kg": "N*m/kg"}


@dataclass
class Evaluation:
    """per_trial: one row per trial (subject, trial, activity, frames, METRIC_KEYS and
    per-coordinate `angle_deg.<c>` / `torque_nm_per_kg.<c>`); summary: the metrics.json dict;
    curves: predicted and reference kinetics of the representative trials (long: `source` is
    "predicted" or "reference"), SI units, with mass_kg for normalising."""
    per_trial: pd.DataFrame
    summary: dict
    curves: pd.DataFrame


def _by_trial(table: pd.DataFrame) -> dict[tuple[str, str], pd.DataFrame]:
    if table.empty:
        return {}
    # copy(): one block per table; reset_index() on the fragmented group warns (pandas 3)
    return {(s, t): g.drop(columns=["subject", "trial"]).set_index("time").sort_index().copy()
            for (s, t), g in table.groupby(["subject", "trial"], sort=True)}


def _activities(warehouse: Path) -> dict[tuple[str, str], str]:
    path = warehouse / "trials.parquet"
    if not path.exists():
        return {}
    trials = pd.read_parquet(path)
    out = {}
    for row in trials.itertuples():
        activity = getattr(row, "activity", None)
        if isinstance(activity, str) and activity:
            out[(str(row.subject), str(row.trial))] = activity
    return out


def default_body_loader(model_path: str) -> Multibody:
    """The subject's scaled model as a float64 Multibody (needs opensim, imported lazily)."""
    return Multibody.from_osim(model_path, dtype=torch.float64)


def evaluate_predictor(predictor, warehouse: str | Path, subjects: list[str] | None = None,
                       load_body: Callable[[str], Multibody] = default_body_loader
                       ) -> Evaluation:
    """Metrics of `predictor` on `subjects` (default: its test split) for every trial that has
    ground truth (kinematics and kinetics leaves) in the warehouse at `warehouse`."""
    warehouse = Path(warehouse)
    subjects = list(subjects if subjects is not None else predictor.split.get("test", []))
    if not subjects:
        raise ModelError("no test subjects to evaluate",
                         hint="the run's split has an empty test set: add subjects to the "
                         "warehouse, or pass subjects explicitly")
    info = pd.read_parquet(warehouse / "subjects.parquet").astype({"subject": str})
    info = {r["subject"]: r for r in info.to_dict("records")}
    unknown = [s for s in subjects if s not in info]
    if unknown:
        raise ModelError(f"test subjects {unknown} are not in subjects.parquet",
                         file=warehouse / "subjects.parquet")
    markers = _by_trial(store.read_table(warehouse, "markers", subjects))
    kinematics = _by_trial(store.read_table(warehouse, "kinematics", subjects))
    kinetics = _by_trial(store.read_table(warehouse, "kinetics", subjects))
    activities = _activities(warehouse)
    keys = [k for k in kinematics if k in kinetics and k in markers]
    if not keys:
        raise ModelError(f"no ground-truth trials for the test subjects {subjects}",
                         file=warehouse, hint="run BuildDataset first")

    bodies: dict[str, Multibody] = {}
    rows, kept = [], {}
    for subject, trial in keys:
        subj = info[subject]
        model = str(subj["model"])
        if model not in bodies:  # subjects may share a model file
            bodies[model] = load_body(model)
        pred = predictor.predict(markers[(subject, trial)].reset_index(), dict(subj))
        ref = {"kinematics": kinematics[(subject, trial)], "kinetics": kinetics[(subject, trial)]}
        m = trial_metrics(pred, ref, bodies[model], float(subj["mass_kg"]))
        activity = activities.get((subject, trial)) or infer_activity(trial)
        row = {"subject": subject, "trial": trial, "activity": activity,
               "mass_kg": float(subj["mass_kg"])}
        row.update({k: m[k] for k in ("frames", *METRIC_KEYS)})
        row.update({ANGLE_PREFIX + c: v for c, v in m["angle_deg"].items()})
        row.update({TORQUE_PREFIX + c: v for c, v in m["torque_nm_per_kg"].items()})
        rows.append(row)
        kept[(subject, trial)] = (pred["kinetics"], ref["kinetics"])
    per_trial = pd.DataFrame(rows)
    split = {k: list(v) for k, v in predictor.split.items()}
    # With fewer than three subjects a split cannot hold one out: say so rather than hide it.
    seen = sorted(set(subjects) & set(split.get("train", [])))
    summary = {**summarize(per_trial, subjects), "split": split,
               "test_subjects_in_training": seen}
    return Evaluation(per_trial, summary, _curves(per_trial, kept))


def summarize(per_trial: pd.DataFrame, subjects: list[str] | None = None) -> dict:
    """metrics.json's body: METRIC_KEYS overall, by activity and by subject, per-coordinate
    errors, counts and units."""
    def block(df):
        return {**weighted_summary(df, list(METRIC_KEYS)), "trials": len(df),
                "frames": int(df["frames"].sum())}

    angle = [c for c in per_trial.columns if c.startswith(ANGLE_PREFIX)]
    torque = [c for c in per_trial.columns if c.startswith(TORQUE_PREFIX)]
    return {
        "overall": block(per_trial),
        "by_activity": {a: block(g) for a, g in per_trial.groupby("activity", sort=True)},
        "by_subject": {s: block(g) for s, g in per_trial.groupby("subject", sort=True)},
        "by_coordinate": {
            "angle_deg": {c.removeprefix(ANGLE_PREFIX): v
                          for c, v in weighted_summary(per_trial, angle).items()},
            "torque_nm_per_kg": {c.removeprefix(TORQUE_PREFIX): v
                                 for c, v in weighted_summary(per_trial, torque).items()}},
        "test_subjects": list(subjects or sorted(per_trial["subject"].unique())),
        "units": UNITS,
        "definitions": "docs/metrics.md",
        "torque_excludes": "root (pelvis) residual forces and moments: not joint torques",
    }


def representative_trials(per_trial: pd.DataFrame) -> list[tuple[str, str]]:
    """Per activity, the trial whose torque error (else landmark error) is nearest the median."""
    out = []
    for _, group in per_trial.groupby("activity", sort=True):
        key = "mae_torque_nm_per_kg" if group["mae_torque_nm_per_kg"].notna().any() \
            else "mpblpe_mm"
        values = group[key].to_numpy(float)
        distance = np.abs(values - np.nanmedian(values)) if np.isfinite(values).any() \
            else np.zeros(len(values))
        row = group.iloc[int(np.nanargmin(np.where(np.isfinite(distance), distance, math.inf)))]
        out.append((row["subject"], row["trial"]))
    return out


def _curves(per_trial: pd.DataFrame, kept: dict) -> pd.DataFrame:
    frames = []
    index = per_trial.set_index(["subject", "trial"])
    for key in representative_trials(per_trial):
        pred, ref = kept[key]
        columns = [c for c in ref.columns if c in GRF_COLUMNS or c.endswith("_moment")]
        pred = pred.set_index("time") if "time" in pred.columns else pred
        for source, table in (("predicted", pred), ("reference", ref)):
            part = table[[c for c in columns if c in table.columns]].reset_index()
            part.insert(0, "source", source)
            part.insert(1, "subject", key[0])
            part.insert(2, "trial", key[1])
            part.insert(3, "activity", index.loc[key, "activity"])
            part.insert(4, "mass_kg", index.loc[key, "mass_kg"])
            frames.append(part)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def write_tables(evaluation: Evaluation, out_dir: str | Path) -> None:
    """metrics.parquet (per trial) and curves.parquet into `out_dir`, each atomically. The
    caller writes metrics.json last (its presence means the rest is there)."""
    import pyarrow as pa

    out_dir = Path(out_dir)
    for name, df in (("metrics.parquet", evaluation.per_trial),
                     ("curves.parquet", evaluation.curves)):
        write_atomic(pa.Table.from_pandas(df, preserve_index=False), out_dir / name)
