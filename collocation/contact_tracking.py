"""Force-plate tracking: the CasADi twin of Moco's `MocoContactTrackingGoal`.

Moco's goal (opensim-core `MocoContactTrackingGoal.cpp`, `calcIntegrandImpl` and
`calcGoalImpl`, no projection, `normalize_tracking_error` off as `osim/moco_track.py` leaves
it) is

    weight / (m g) * integral over the window of  sum over feet ||F_model - F_measured||^2 dt

- F_model: the sum of the foot's SmoothSphereHalfSpaceForce forces on the foot (the sphere's
  side of each record: the groups name `calcn_<s>` as the ExternalForce's body and `toes_<s>`
  as the alternative frame), 3 components in ground, N;
- F_measured: the plate's `ground_force_<s>_v{x,y,z}` (N, ground) at that time (Moco splines
  the .mot with GCV splines; here it is interpolated linearly, the .mot being at the plate or
  capture rate, far finer than the collocation grid);
- m g: the model's total mass times |gravity| (N), so the integrand is in N (per body weight
  of N^2): 1 s of a 0.1 BW error on one foot of a 70 kg model costs 68.6 * weight.
Feet are grouped as `osim.moco_track.contact_force_paths` groups them: by the `_r`/`_l`
suffix of the body the sphere is attached to. The integral is Simpson's rule on the
Hermite-Simpson grid, like every other term of `problem.py`.

One difference from Moco, on purpose: a plate's zero is tracked only where the plates saw the
body's whole support (`tracked_feet`). A plate reads zero both in swing and when the foot stands
beside it; Moco tracks those zeros too. In opensim-core's example3DWalking the subject is on the
floor, not on the plates, for the first 0.27 s and the last 0.3 s: tracking those zeros lifted
the pelvis (untracked height) to unload the feet, 21 mm RMS off the IK, failing the quality
gate. Where the plates do see everything, the vertical force the motion needs (inverse dynamics
without contact, `dynamics.implied_support`) matched their sum within 0.05 BW over the whole
trial; where a foot was beside them it differed by 0.2 to 1.1 BW. A loaded plate is a
measurement whatever the other foot does, so it is always tracked.

This module imports no CasADi: the measured forces and grouping are plain NumPy, and
`grf_tracking_integrand` takes any array type with `@` and `**` (NumPy, CasADi SX/MX).
"""
from __future__ import annotations

import numpy as np

from pipeline.errors import IngestError
from pipeline.opensim_files import read_sto

from .output import foot_side

SIDES = ("r", "l")
#: Plates count as seeing the body's whole support where their summed vertical force is within
#: this many body weights of what the motion needs (see the module docstring).
COVER_TOLERANCE_BW = 0.15
#: A plate measures a foot where its vertical force exceeds this (N; the stance threshold of
#: `osim.ground_truth.grf_errors`).
LOADED_N = 20.0


def foot_groups(setup) -> np.ndarray:
    """(S, 2) 0/1 matrix: sphere s belongs to foot r (column 0) or l (column 1)."""
    groups = np.zeros((len(setup.spheres), len(SIDES)))
    for s, sphere in enumerate(setup.spheres):
        groups[s, SIDES.index(foot_side(setup.tree.body_names[sphere.body]))] = 1.0
    return groups


def body_weight(tree) -> float:
    """Moco's denominator: total mass (kg) times |gravity| (m/s^2), or the mass where g = 0."""
    mass = float(np.sum(tree.mass))
    g = float(np.linalg.norm(tree.gravity))
    return mass * g if g > 1e-12 else mass


def measured_foot_forces(path, times: np.ndarray) -> np.ndarray:
    """(P, 3, 2) measured force per foot (N, ground; column 0 right, 1 left) at `times` (s),
    linearly interpolated (held at the ends) from a .mot with `ground_force_<s>_v{x,y,z}`.
    NaN counts as 0, as OpenSim's readers take it (`osim/ground_truth.py` `_grf_mot`)."""
    table = read_sto(path)
    wanted = [f"ground_force_{s}_v{a}" for s in SIDES for a in "xyz"]
    missing = [c for c in wanted if c not in table.columns]
    if missing:
        raise IngestError(f"measured GRF has no columns {missing}", file=path,
                          hint="per-foot columns ground_force_<r|l>_v<x|y|z> in N, ground frame")
    t = table.index.to_numpy(dtype=float)
    if len(t) < 2 or np.any(np.diff(t) <= 0):
        raise IngestError("measured GRF needs at least 2 rows with increasing time", file=path)
    values = np.nan_to_num(table[wanted].to_numpy(dtype=float), nan=0.0)
    out = np.empty((len(times), 3, len(SIDES)))
    for k in range(len(wanted)):
        side, axis = divmod(k, 3)
        out[:, axis, side] = np.interp(times, t, values[:, k])
    return out


def grf_tracking_integrand(forces, measured, groups: np.ndarray, weight_n: float, tracked):
    """Moco's integrand divided by m g at one time point: sum over the tracked feet of
    ||F_model - F_measured||^2 / weight_n (N).

    forces: (3, S) sphere forces on the feet (N, ground); measured: (3, 2) per foot;
    groups: `foot_groups`; weight_n: `body_weight`; tracked: (2,) 1 where that foot's plate
    reading is tracked, else 0 (`tracked_feet`)."""
    error = forces @ groups - measured                       # (3, 2) N
    return ((error ** 2).T @ np.ones(3)).T @ tracked / weight_n


def tracked_feet(measured: np.ndarray, implied, weight_n: float,
                 tolerance_bw: float = COVER_TOLERANCE_BW) -> np.ndarray:
    """(P, 2) True where a foot's plate reading is tracked: the plate is loaded (> LOADED_N), or
    the plates saw the whole support (|sum of the measured vertical forces - implied| <=
    tolerance_bw * weight_n, so a zero is swing, not a foot beside the plates).
    measured: (P, 3, 2) (N, +y up); implied: (P,) N from `dynamics.implied_support`, or None
    (model without a free pelvis_ty: every reading is tracked, as Moco does)."""
    vertical = measured[:, 1, :]                                               # (P, 2)
    if implied is None:
        return np.ones(vertical.shape, dtype=bool)
    covered = np.abs(vertical.sum(axis=1) - np.asarray(implied)) <= tolerance_bw * weight_n
    return (vertical > LOADED_N) | covered[:, None]
