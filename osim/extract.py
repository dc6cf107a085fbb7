"""Moco solutions -> OpenSim-named tables: coordinates, speeds, accelerations, joint torques,
pelvis residuals and ground reaction forces per foot."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.opensim_files import write_sto


def _coordinates(model) -> list:
    return list(model.getCoordinateSet())


def _is_translational(coordinate) -> bool:
    import opensim

    return coordinate.getMotionType() == opensim.Coordinate.Translational


def kinematics_table(model, solution) -> pd.DataFrame:
    """q, q̇ and q̈ by coordinate name (`hip_flexion_r`, `_speed`, `_accel`); rad or m.
    `model` must be initialised (initSystem) already."""
    import opensim

    times = np.asarray(solution.getTimeMat()).ravel()
    coordinates = _coordinates(model)
    values, speeds, accels = {}, {}, {}
    for coord in coordinates:
        path, name = coord.getAbsolutePathString(), coord.getName()
        values[name] = solution.getState(f"{path}/value").to_numpy()
        speeds[f"{name}_speed"] = solution.getState(f"{path}/speed").to_numpy()
        accels[f"{name}_accel"] = np.empty(len(times))
    # Accelerations of the dynamics themselves (not differentiated speeds): realise the model
    # at each mesh point with the solution's states and controls.
    states = solution.exportToStatesTrajectory(model)
    controls = solution.getControlsTrajectoryMat()
    for i in range(states.getSize()):
        state = states.get(i)
        model.realizeVelocity(state)
        model.setControls(state, opensim.Vector(np.asarray(controls[i]).ravel().tolist()))
        model.realizeAcceleration(state)
        for coord in coordinates:
            accels[f"{coord.getName()}_accel"][i] = coord.getAccelerationValue(state)
    return pd.DataFrame({**values, **speeds, **accels}, index=pd.Index(times, name="time"))


def actuator_generalized_forces(model, solution) -> pd.DataFrame:
    """Joint torques (N·m) and forces (N) from coordinate actuators: control × optimal force,
    summed per coordinate and named as OpenSim's ID output (`<coord>_moment`, `<coord>_force`).
    The pelvis columns are the residuals."""
    import opensim

    times = np.asarray(solution.getTimeMat()).ravel()
    out: dict[str, np.ndarray] = {}
    for actuator in model.getActuators():
        coord_actuator = opensim.CoordinateActuator.safeDownCast(actuator)
        if coord_actuator is None:
            continue
        coord = coord_actuator.getCoordinate()
        control = solution.getControl(actuator.getAbsolutePathString()).to_numpy()
        name = coord.getName() + ("_force" if _is_translational(coord) else "_moment")
        out[name] = out.get(name, 0.0) + control * coord_actuator.getOptimalForce()
    return pd.DataFrame(out, index=pd.Index(times, name="time"))


# Below this vertical force a foot is unloaded and its centre of pressure undefined (NaN), as in
# ingest of measured plates.
UNLOADED_N = 1.0


def grf_table(grf_gait) -> pd.DataFrame:
    """GRF per foot from `createExternalLoadsTableForGait`. In OpenSim 4.6 its torque columns are
    already about the centre of pressure (x and z zero, y the free moment): checked against a
    sum over the sphere forces in tests/test_moco_track.py. CoP is NaN where a foot is unloaded."""
    times = np.asarray(grf_gait.getIndependentColumn())
    out = {label: grf_gait.getDependentColumn(label).to_numpy().copy()
           for label in grf_gait.getColumnLabels()}
    for side in ("r", "l"):
        unloaded = out[f"ground_force_{side}_vy"] < UNLOADED_N
        for axis in "xyz":
            out[f"ground_force_{side}_p{axis}"][unloaded] = np.nan
    return pd.DataFrame(out, index=pd.Index(times, name="time"))


def kinetics_table(model, solution, grf_gait) -> pd.DataFrame:
    return actuator_generalized_forces(model, solution).join(grf_table(grf_gait))


def write_table(df: pd.DataFrame, path: Path) -> None:
    write_sto(path, df, in_degrees=False, name=path.stem)
