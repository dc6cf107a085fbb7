"""Quality gates for ground truth, with the thresholds used in the field.

- Pelvis residual force RMS ≤ 0.05 BW and residual moment RMS ≤ 0.1 BW·h (AddBiomechanics'
  thresholds; RMS over the trial, magnitude of the 3-vector).
- Coordinate tracking RMSE: rotational coordinates ≤ `max_angle_rmse_deg`, pelvis translations
  ≤ `max_translation_rmse_m`.
- Mean total vertical GRF over the trial within `vgrf_tolerance` of body weight: over whole strides
  (or a motion that starts and ends at rest) the body's vertical momentum returns to where it
  started, so the feet carry the body weight on average.
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
    vgrf = sum(kinetics[c] for c in ("ground_force_r_vy", "ground_force_l_vy") if c in kinetics)
    return {
        "residual_force_rms_bw": _rms_norm(kinetics, PELVIS_FORCES) / weight,
        "residual_moment_rms_bwh": _rms_norm(kinetics, PELVIS_MOMENTS) / (weight * height_m),
        "max_angle_rmse_deg": float(np.degrees(max((rmse[c] for c in rotational), default=0))),
        "max_translation_rmse_m": float(max((rmse[c] for c in translational), default=0)),
        "mean_vgrf_bw": float(np.mean(vgrf) / weight) if len(kinetics) else float("nan"),
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
