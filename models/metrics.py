"""The paper's evaluation metrics, predicted against reference motion and kinetics of one trial.

Pure functions over NumPy arrays and the warehouse's DataFrames (definitions and units in
docs/metrics.md). Bony landmarks come from forward kinematics of the coordinates through the
subject's own model (`models.dynamics.Multibody`), untracked coordinates at their defaults, so
predicted and reference poses are compared on the same skeleton:

    pred, ref = align_on_time(pred_kinematics, ref_kinematics)
    p, r = landmark_positions(body, pred), landmark_positions(body, ref)   # (T, L, 3) m
    position_error_mm(p, r)
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from models.dynamics import Multibody
from osim.markers import BONY_LANDMARKS
from pipeline.errors import ModelError

GRAVITY = 9.80665  # m/s^2, standard gravity: body weight = m * g
METRIC_KEYS = ("mpblpe_mm", "mae_angle_deg", "accel_err_mm_per_frame2", "vel_err_mm_per_frame",
               "mae_grf_bw", "mae_torque_nm_per_kg")
GRF_COLUMNS = tuple(f"ground_force_{side}_v{axis}" for side in "rl" for axis in "xyz")
TRANSLATION_SUFFIXES = ("_tx", "_ty", "_tz")
# Two predictions and a reference are the same frame when their times differ by less than this
# share of the reference's frame interval.
TIME_TOLERANCE_FRAMES = 0.25


# ---- alignment -------------------------------------------------------------------------------
def _with_time_index(df: pd.DataFrame) -> pd.DataFrame:
    if "time" in df.columns:
        df = df.set_index("time")
    if df.index.name != "time":
        raise ValueError("a table to align needs a `time` column or index (s)")
    return df.sort_index()


def align_on_time(pred: pd.DataFrame, ref: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Rows of `pred` and `ref` at the same instants (nearest within a quarter frame), both
    indexed by the reference's time (s). Frames either side lacks are dropped."""
    pred, ref = _with_time_index(pred), _with_time_index(ref)
    if len(ref) == 0 or len(pred) == 0:
        return pred.iloc[:0], ref.iloc[:0]
    t_ref, t_pred = ref.index.to_numpy(float), pred.index.to_numpy(float)
    dt = float(np.median(np.diff(t_ref))) if len(t_ref) > 1 else 1.0
    j = np.searchsorted(t_pred, t_ref)
    lo, hi = np.clip(j - 1, 0, len(t_pred) - 1), np.clip(j, 0, len(t_pred) - 1)
    nearest = np.where(np.abs(t_pred[lo] - t_ref) <= np.abs(t_pred[hi] - t_ref), lo, hi)
    keep = np.abs(t_pred[nearest] - t_ref) <= TIME_TOLERANCE_FRAMES * dt
    aligned = pred.iloc[nearest[keep]].set_axis(ref.index[keep])
    return aligned, ref.loc[keep]


def contiguous_runs(time: np.ndarray) -> list[slice]:
    """Slices of consecutive frames: a gap longer than 1.5 frame intervals starts a new run, so
    finite differences never span missing frames."""
    time = np.asarray(time, dtype=float)
    if len(time) < 2:
        return [slice(0, len(time))]
    step = np.diff(time)
    breaks = np.flatnonzero(step > 1.5 * np.median(step)) + 1
    edges = [0, *breaks.tolist(), len(time)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]


# ---- bony landmarks --------------------------------------------------------------------------
def landmark_positions(body: Multibody, kinematics: pd.DataFrame,
                       landmarks: tuple[str, ...] = BONY_LANDMARKS) -> np.ndarray:
    """Bony-landmark positions (T, L, 3) m in ground by forward kinematics of the coordinate
    columns of `kinematics` (rad / m) through `body`; coordinates it lacks stay at the model's
    defaults (as the tracking welded them). Landmarks the model lacks are left out, in
    `landmarks` order; none at all raises ModelError."""
    present = [c for c in body.coordinate_names if c in kinematics.columns]
    if not present:
        raise ModelError("the kinematics share no coordinate with the subject's model",
                         hint="columns must be OpenSim coordinate names")
    names = body.marker_names
    index = [names.index(m) for m in landmarks if m in names]
    if not index:
        raise ModelError("the subject's model has none of the bony landmarks",
                         hint="name model markers after osim.markers (Plug-in Gait)")
    q = body.default_coordinates(len(kinematics)).to(torch.float64)
    cols = [body.coordinate_names.index(c) for c in present]
    q[:, cols] = torch.tensor(kinematics[present].to_numpy(float, copy=True), dtype=torch.float64)
    with torch.no_grad():
        return body.marker_positions(q)[:, index, :].numpy()


def landmark_names(body: Multibody, landmarks: tuple[str, ...] = BONY_LANDMARKS) -> list[str]:
    """The landmarks `landmark_positions` returns, in its order."""
    return [m for m in landmarks if m in body.marker_names]


# ---- kinematic metrics -----------------------------------------------------------------------
def position_error_mm(pred: np.ndarray, ref: np.ndarray) -> float:
    """MPBLPE: mean over frames and landmarks of |p_pred - p_ref|, mm. pred/ref (T, L, 3) m."""
    return float(np.mean(np.linalg.norm(pred - ref, axis=-1)) * 1e3) if len(ref) else np.nan


def _difference_error_mm(pred, ref, order: int, runs: list[slice] | None) -> float:
    errors = []
    for run in runs or [slice(0, len(ref))]:
        d_pred, d_ref = np.diff(pred[run], n=order, axis=0), np.diff(ref[run], n=order, axis=0)
        errors.append(np.linalg.norm(d_pred - d_ref, axis=-1).ravel())
    errors = np.concatenate(errors) if errors else np.zeros(0)
    return float(errors.mean() * 1e3) if errors.size else np.nan


def velocity_error_mm_per_frame(pred: np.ndarray, ref: np.ndarray,
                                runs: list[slice] | None = None) -> float:
    """Mean over frames and landmarks of |v_pred - v_ref| with v[t] = p[t+1] - p[t], mm/frame.
    `runs` (from `contiguous_runs`) keeps differences inside stretches of consecutive frames."""
    return _difference_error_mm(pred, ref, 1, runs)


def acceleration_error_mm_per_frame2(pred: np.ndarray, ref: np.ndarray,
                                     runs: list[slice] | None = None) -> float:
    """Mean over frames and landmarks of |a_pred - a_ref| with a[t] = p[t+1] - 2 p[t] + p[t-1],
    mm/frame^2 (the ACCEL error of human-mesh-recovery papers, on bony landmarks)."""
    return _difference_error_mm(pred, ref, 2, runs)


def rotational_coordinates(body: Multibody | None, names: list[str]) -> list[str]:
    """The angles among `names`: by the model's motion types when given (everything but
    translational coordinates), else by name (`*_tx/_ty/_tz` are translations)."""
    if body is not None:
        kinds = {c["name"]: c.get("motion_type", "rotational")
                 for c in body.tree.description.get("coordinates", [])}
        if kinds:
            return [n for n in names if kinds.get(n, "rotational") != "translational"]
    return [n for n in names if not n.endswith(TRANSLATION_SUFFIXES)]


def angle_errors_deg(pred: pd.DataFrame, ref: pd.DataFrame, coordinates: list[str]) -> pd.Series:
    """Per-coordinate mean absolute angle error, degrees; differences wrapped to (-180, 180]
    so that -179 against 179 is 2 degrees. pred/ref aligned, radians."""
    diff = pred[coordinates].to_numpy(float) - ref[coordinates].to_numpy(float)
    wrapped = np.angle(np.exp(1j * diff))
    return pd.Series(np.degrees(np.nanmean(np.abs(wrapped), axis=0)), index=coordinates)


# ---- kinetic metrics -------------------------------------------------------------------------
def residual_coordinates(body: Multibody | None, names: list[str]) -> list[str]:
    """Coordinates of the root joint (the pelvis' six, connected to ground): their generalized
    forces are residual actions, not joint torques. By the model's joints when given, else the
    `pelvis_` prefix."""
    if body is not None:
        roots = [j for j in body.tree.description.get("joints", [])
                 if j.get("parent_body") == "ground"]
        if roots:
            root = {c for j in roots for c in j.get("coordinates", [])}
            return [n for n in names if n in root]
    return [n for n in names if n.startswith("pelvis_")]


def joint_moment_columns(columns, residuals: list[str]) -> list[str]:
    """`<coord>_moment` columns (N*m) of the non-root coordinates, in `columns` order."""
    skip = {f"{c}_moment" for c in residuals}
    return [c for c in columns if c.endswith("_moment") and c not in skip]


def torque_errors_nm_per_kg(pred: pd.DataFrame, ref: pd.DataFrame, columns: list[str],
                            mass_kg: float) -> pd.Series:
    """Per-joint mean absolute moment error divided by body mass, N*m/kg (index: coordinate)."""
    _check_mass(mass_kg)
    err = np.nanmean(np.abs(pred[columns].to_numpy(float) - ref[columns].to_numpy(float)), axis=0)
    return pd.Series(err / mass_kg, index=[c.removesuffix("_moment") for c in columns])


def grf_error_bw(pred: pd.DataFrame, ref: pd.DataFrame, mass_kg: float) -> float:
    """Mean absolute GRF error over frames, both feet and the three force components, in body
    weights (N / (m g)). Pairs where either side is NaN are left out."""
    _check_mass(mass_kg)
    missing = [c for c in GRF_COLUMNS if c not in pred.columns or c not in ref.columns]
    if missing:
        raise ValueError(f"GRF columns missing: {missing}")
    err = np.abs(pred[list(GRF_COLUMNS)].to_numpy(float) - ref[list(GRF_COLUMNS)].to_numpy(float))
    return float(np.nanmean(err) / (mass_kg * GRAVITY)) if np.isfinite(err).any() else np.nan


def _check_mass(mass_kg: float) -> None:
    if not np.isfinite(mass_kg) or mass_kg <= 0:
        raise ValueError(f"body mass must be positive, got {mass_kg!r} kg")


# ---- one trial -------------------------------------------------------------------------------
def trial_metrics(pred: dict[str, pd.DataFrame], ref: dict[str, pd.DataFrame], body: Multibody,
                  mass_kg: float) -> dict:
    """Every metric of one trial: `pred`/`ref` are {"kinematics", "kinetics"} tables (time +
    warehouse columns, SI). Returns the METRIC_KEYS, `frames` (aligned kinematic frames) and
    per-coordinate errors under `angle_deg` and `torque_nm_per_kg` (dicts)."""
    pk, rk = align_on_time(pred["kinematics"], ref["kinematics"])
    coords = [c for c in body.coordinate_names if c in rk.columns]
    lacking = [c for c in coords if c not in pk.columns]
    if lacking:
        raise ValueError(f"the prediction lacks coordinates the reference has: {lacking}")
    runs = contiguous_runs(rk.index.to_numpy(float))
    p_pts, r_pts = landmark_positions(body, pk[coords]), landmark_positions(body, rk[coords])
    angles = angle_errors_deg(pk, rk, rotational_coordinates(body, coords))

    pt, rt = align_on_time(pred["kinetics"], ref["kinetics"])
    moments = joint_moment_columns(rt.columns, residual_coordinates(body, coords))
    lacking = [c for c in moments if c not in pt.columns]
    if lacking:
        raise ValueError(f"the prediction lacks joint moments the reference has: {lacking}")
    torques = torque_errors_nm_per_kg(pt, rt, moments, mass_kg)
    return {
        "frames": len(rk),
        "mpblpe_mm": position_error_mm(p_pts, r_pts),
        "mae_angle_deg": float(angles.mean()) if len(angles) else np.nan,
        "accel_err_mm_per_frame2": acceleration_error_mm_per_frame2(p_pts, r_pts, runs),
        "vel_err_mm_per_frame": velocity_error_mm_per_frame(p_pts, r_pts, runs),
        "mae_grf_bw": grf_error_bw(pt, rt, mass_kg) if len(rt) else np.nan,
        "mae_torque_nm_per_kg": float(torques.mean()) if len(torques) and len(rt) else np.nan,
        "angle_deg": angles.to_dict(),
        "torque_nm_per_kg": torques.to_dict(),
    }


def weighted_summary(per_trial: pd.DataFrame, columns: list[str]) -> dict[str, float]:
    """Frame-weighted means of per-trial values (NaN trials left out), for tables and JSON."""
    out = {}
    weights = per_trial["frames"].to_numpy(float)
    for col in columns:
        values = per_trial[col].to_numpy(float)
        ok = np.isfinite(values) & (weights > 0)
        out[col] = float(np.average(values[ok], weights=weights[ok])) if ok.any() else None
    return out
