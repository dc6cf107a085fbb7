"""Dynamically consistent synthetic strides: the planted-feet kinematics, solved once.

`plant_feet` builds a walking stride that is plausible to the eye but not to Newton: the pelvis
goes where the nominal leg angles put it, so inverse dynamics of a stride needs about 1 BW of
horizontal force, and a tracking solver can only follow it by letting the pelvis drift ~100 mm
from the reference (docs/cohort.md). Such a trial can never pass the quality gates, whatever the
ground-truth pipeline does right.

So a walking trial's truth is a solution of the equations of motion near the planted stride: the
CasADi collocation engine (issue 9; exact derivatives, ~20 s for a 1 s stride on one core)
tracks the planted coordinates with the walking preset, the contact spheres carrying the body
and the pelvis residuals priced as in the ground-truth runs. Its joint angles stay within a few
degrees of the normative curves; the pelvis goes where the ground forces take it. The markers
are then the forward kinematics of that solution, so recovering it from the markers (IK, then
Moco) is a well-posed test of the pipeline, and the generation's own GRFs and torques are known.

The joints the tracking model welds (arms, toes) are solved at their defaults; in the truth the
toes stay there (they hold contact spheres), and the arms keep their nominal swing (markers that
look like walking; their inertia moves the whole-body centre of mass by millimetres).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import QualityError
from pipeline.opensim_files import read_sto, write_sto
from pipeline.quality import Gates
from pipeline.signal import hermite_resample
from pipeline.windows import stitch

from .ground_truth import track_trial
from .moco_track import PRESETS

#: The joints the default TrackMoco settings weld (luigi.cfg): the truth is solved on the same
#: model the pipeline will track it with.
WELD_JOINTS = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l",
               "radioulnar_r", "radioulnar_l", "radius_hand_r", "radius_hand_l")

# The planted stride is off by construction (that is why it is solved), so the tracking gates
# are wide; the residual gates stay as in the ground-truth runs, so the truth is carried by the
# contact spheres and not by the pelvis residuals.
#: Motion.activity values whose planted kinematics are solved (squats and sit-to-stand balance
#: their centre of mass over the feet while planting them, and pass the gates as planted).
SOLVED_ACTIVITIES = ("walk",)

GENERATION_GATES = Gates(max_angle_rmse_deg=10.0, max_translation_rmse_m=0.5)


def solve_consistent(model_path: Path, coords: pd.DataFrame, workdir: Path, *, mass_kg: float,
                     height_m: float, trial: str = "",
                     weld_joints: tuple[str, ...] = WELD_JOINTS) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The truth of a planted stride: (coordinates, kinetics) on `coords`' frame times that the
    solution covers (it ends on the 0.025 s mesh, up to one interval before the last frame).

    `coords` holds every coordinate of the model (rad, m) indexed by time (s); `model_path` is
    the built-in model with its actuators and contact spheres. One collocation window spans the
    whole trial, so the truth has no seams. Raises SolveError or QualityError (with the trial
    name) when the stride cannot be made consistent.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    reference = workdir / "planted.sto"
    write_sto(reference, coords, in_degrees=False, name=trial or "planted")
    # The engine's formulation the cohort's strides were generated and measured with
    # (docs/cohort.md): unscaled variables, Simbody's friction kink. With the scaling and the
    # rounded kink the same strides came out with a 3.8-4.3 BW impact on the trailing foot over
    # the first 30 ms (0.8 -> 1.6 BW before) and two of the four default walks kept Moco past 150
    # and 300 iterations (39-60 before); a change of the generated truth is measured on its own.
    settings = replace(PRESETS["walking"], engine="casadi", weld_joints=tuple(weld_joints),
                       scale_variables=False, friction_kink=0.0)
    duration = float(coords.index[-1] - coords.index[0])
    summary = track_trial(model=Path(model_path), ik=reference, grf_leaf=None, settings=settings,
                          mass_kg=mass_kg, height_m=height_m, workdir=workdir / "solve",
                          max_window_s=duration + 1.0, trial=trial, gates=GENERATION_GATES)
    final = [w for w in summary["windows"] if w["final"]]
    if len(final) == 1:
        # One solution: resample q with its own speeds and accelerations (the C2 quintic), so
        # the markers' velocities and accelerations are the solution's.
        solution = read_sto(Path(final[0]["workdir"]) / "kinematics.sto")
        kinetics = read_sto(Path(final[0]["workdir"]) / "kinetics.sto")
    else:
        # The retry ladder split the window in two: their linear blend (pipeline.windows).
        solution = pd.read_parquet(workdir / "solve" / "kinematics.parquet")
        kinetics = pd.read_parquet(workdir / "solve" / "kinetics.parquet")
    times = coords.index.to_numpy()
    span = (times >= solution.index[0] - 1e-9) & (times <= solution.index[-1] + 1e-9)
    frames = times[span]
    truth = coords.loc[span].copy()
    solved = [c for c in coords.columns if c in solution and f"{c}_speed" in solution]
    truth[solved] = hermite_resample(
        solution.index.to_numpy(), solution[solved].to_numpy(),
        solution[[f"{c}_speed" for c in solved]].to_numpy(),
        solution[[f"{c}_accel" for c in solved]].to_numpy(), frames)
    for name in ("mtp_angle_r", "mtp_angle_l"):
        if name in truth and name not in solved:
            truth[name] = 0.0               # welded at its default in the solution
    if not np.isfinite(truth.to_numpy()).all():
        raise QualityError("the consistent stride has non-finite coordinates", trial=trial,
                           file=str(workdir))
    return truth, stitch([kinetics], frames)
