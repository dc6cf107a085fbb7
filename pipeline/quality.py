"""Quality gates for ground truth, with the thresholds used in the field.

- Pelvis residual force RMS ≤ 0.05 BW and residual moment RMS ≤ 0.1 BW·h (AddBiomechanics'
  thresholds; RMS over the trial, magnitude of the 3-vector).
- Coordinate tracking RMSE: rotational coordinates ≤ `max_angle_rmse_deg`, pelvis translations
  ≤ `max_translation_rmse_m`.
- Mean total vertical GRF within `vgrf_tolerance` of body weight: over whole strides (or a motion
  that starts and ends at rest) the body's vertical momentum returns to where it started, so the
  feet carry the body weight on average. Where the trial holds a whole stride (the same gait
  event of the same foot twice, see `whole_strides`) the mean is taken over the whole strides;
  elsewhere (squats, standing) over the trial.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

GRAVITY = 9.80665
PELVIS_FORCES = ("pelvis_tx_force", "pelvis_ty_force", "pelvis_tz_force")
PELVIS_MOMENTS = ("pelvis_tilt_moment", "pelvis_list_moment", "pelvis_rotation_moment")


@dataclass(frozen=True)
class Gates:
    max_residual_force_bw: float = 0.05
    max_residual_moment_bwh: float = 0.10
    max_angle_rmse_deg: float = 5.0
    max_translation_rmse_m: float = 0.02
    vgrf_tolerance: float = 0.10
    check_mean_vgrf: bool = True


def _rms_norm(df: pd.DataFrame, columns) -> float:
    present = [c for c in columns if c in df]
    if not present:
        return float("nan")
    return float(np.sqrt(np.mean(np.sum(df[present].to_numpy() ** 2, axis=1))))


CONTACT_N = 20.0   # a foot is on the ground where its vertical GRF exceeds this (N)
# Contact or flight shorter than this is a bounce of the contact model, not a gait event: a
# synthetic stride's foot lifted for 10 ms at the end of stance, which made two "strides" of it.
MIN_PHASE_S = 0.05


def _debounced(on: np.ndarray, times: np.ndarray, shortest_s: float) -> np.ndarray:
    """`on` with inner runs (of either value) shorter than `shortest_s` flipped to their
    neighbours' value."""
    on = on.copy()
    edges = np.flatnonzero(np.diff(on.astype(int))) + 1
    starts, ends = np.r_[0, edges], np.r_[edges, len(on)]
    for a, b in zip(starts[1:-1], ends[1:-1], strict=True):
        if times[b - 1] - times[a] < shortest_s:
            on[a:b] = not on[a]
    return on


def whole_strides(kinetics: pd.DataFrame) -> tuple[float, float] | None:
    """The longest span (t_start, t_end) between two like gait events of one foot (touch-downs,
    or lift-offs: vertical GRF crossing CONTACT_N up, or down), i.e. a whole number of strides;
    None when no foot has the same event twice."""
    times = kinetics.index.to_numpy()
    best = None
    for side in ("r", "l"):
        column = f"ground_force_{side}_vy"
        if column not in kinetics:
            continue
        on = _debounced(kinetics[column].to_numpy() > CONTACT_N, times, MIN_PHASE_S)
        for events in (np.flatnonzero(on[1:] & ~on[:-1]) + 1, np.flatnonzero(~on[1:] & on[:-1]) + 1):
            if len(events) >= 2 and (best is None or
                                     times[events[-1]] - times[events[0]] > best[1] - best[0]):
                best = (float(times[events[0]]), float(times[events[-1]]))
    return best


def mean_vgrf(kinetics: pd.DataFrame, weight: float) -> tuple[float, float]:
    """Mean total vertical GRF (BW) over the whole strides, else over the trial; and the span it
    was taken over (s; 0 when over the trial)."""
    vgrf = sum(kinetics[c] for c in ("ground_force_r_vy", "ground_force_l_vy") if c in kinetics)
    if not len(kinetics):
        return float("nan"), 0.0
    span = whole_strides(kinetics)
    if span is None:
        return float(np.mean(vgrf) / weight), 0.0
    times = kinetics.index.to_numpy()
    inside = (times >= span[0]) & (times < span[1])
    return float(np.mean(np.asarray(vgrf)[inside]) / weight), span[1] - span[0]


def measure(kinetics: pd.DataFrame, tracked: pd.DataFrame, reference: pd.DataFrame,
            mass_kg: float, height_m: float) -> dict:
    """The numbers the gates look at. `tracked` and `reference` hold coordinates by name on the
    same time index (reference interpolated to the solution's times by the caller)."""
    weight = mass_kg * GRAVITY
    common = [c for c in reference.columns if c in tracked.columns]
    error = tracked[common].to_numpy() - reference[common].to_numpy()
    rmse = dict(zip(common, np.sqrt(np.mean(error ** 2, axis=0))))
    translational = [c for c in common if c.endswith(("_tx", "_ty", "_tz"))]
    rotational = [c for c in common if c not in translational]
    vgrf, strides_s = mean_vgrf(kinetics, weight)
    return {
        "residual_force_rms_bw": _rms_norm(kinetics, PELVIS_FORCES) / weight,
        "residual_moment_rms_bwh": _rms_norm(kinetics, PELVIS_MOMENTS) / (weight * height_m),
        "max_angle_rmse_deg": float(np.degrees(max((rmse[c] for c in rotational), default=0))),
        "max_translation_rmse_m": float(max((rmse[c] for c in translational), default=0)),
        "mean_vgrf_bw": vgrf,
        "vgrf_strides_s": strides_s,
        "worst_coordinate": max(rotational, key=rmse.get) if rotational else "",
    }


def failed_gates(numbers: dict, gates: Gates = Gates()) -> list[str]:
    """Human-readable reasons a result fails, empty when it passes."""
    reasons = []
    if not numbers["residual_force_rms_bw"] <= gates.max_residual_force_bw:
        reasons.append(f"pelvis residual force RMS {numbers['residual_force_rms_bw']:.3f} BW "
                       f"> {gates.max_residual_force_bw} BW")
    if not numbers["residual_moment_rms_bwh"] <= gates.max_residual_moment_bwh:
        reasons.append(f"pelvis residual moment RMS {numbers['residual_moment_rms_bwh']:.3f} "
                       f"BW·h > {gates.max_residual_moment_bwh} BW·h")
    if not numbers["max_angle_rmse_deg"] <= gates.max_angle_rmse_deg:
        reasons.append(f"tracking RMSE {numbers['max_angle_rmse_deg']:.1f}° at "
                       f"{numbers['worst_coordinate']} > {gates.max_angle_rmse_deg}°")
    if not numbers["max_translation_rmse_m"] <= gates.max_translation_rmse_m:
        reasons.append(f"pelvis translation RMSE {numbers['max_translation_rmse_m'] * 1000:.0f}"
                       f" mm > {gates.max_translation_rmse_m * 1000:.0f} mm")
    if gates.check_mean_vgrf and not abs(numbers["mean_vgrf_bw"] - 1) <= gates.vgrf_tolerance:
        reasons.append(f"mean vertical GRF {numbers['mean_vgrf_bw']:.2f} BW, not within "
                       f"{gates.vgrf_tolerance:.0%} of body weight")
    return reasons


def gates_dict(gates: Gates) -> dict:
    return asdict(gates)
