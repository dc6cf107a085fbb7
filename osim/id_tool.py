"""OpenSim's InverseDynamicsTool on a kinematics table and a GRF table: the check a lab runs on
ground truth ("do OpenSim's own tools give the same joint torques?").

Two details decide whether the answer means anything:
- The tool applies every force of the model that is not excluded. A tracking model's contact
  spheres and torque actuators must be excluded, or the ground reaction is counted twice (once
  through the spheres, once through the external loads) and the actuators add their controls.
- The tool fits quintic splines through the coordinates and differentiates them twice. Through
  Moco's mesh points alone (12.5 ms apart with Hermite-Simpson at a 25 ms mesh) that misses the
  accelerations by tens of N*m. `write_dense_kinematics` writes Moco's trajectory as the C2 curve
  matching its q, q-dot and q-ddot at every mesh point, sampled at 2 kHz so that every mesh
  point and midpoint (multiples of 12.5 ms) is a sample, padded beyond both ends. Measured on a
  0.4 s squat window (tests/test_moco_consistency.py): through the mesh points alone the tool
  missed by 14-53 N*m RMS; sampled at 1 kHz and compared by interpolation, up to 57 N on the
  pelvis residual; at 2 kHz on the samples, joint torques within 1 N*m and residuals within 5 N.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.opensim_files import read_sto, write_mot
from pipeline.signal import hermite_resample


def write_dense_kinematics(kinematics: pd.DataFrame, coordinates: list[str], path: Path,
                           rate_hz: float = 2000.0, pad_s: float = 0.05) -> Path:
    """A .mot of `coordinates` (rad, m) at `rate_hz`, through each coordinate's value, `_speed`
    and `_accel` columns of `kinematics` (index: time, s), `pad_s` beyond both ends."""
    times = kinematics.index.to_numpy(dtype=float)
    # Padded by the end pieces' own polynomials: the tool's splines misbehave at their ends
    # (hundreds of N at the first frame), so their ends must lie outside the compared times.
    dense_times = np.arange(times[0] - pad_s, times[-1] + pad_s + 0.5 / rate_hz, 1.0 / rate_hz)
    values = hermite_resample(times, kinematics[coordinates].to_numpy(),
                              kinematics[[f"{c}_speed" for c in coordinates]].to_numpy(),
                              kinematics[[f"{c}_accel" for c in coordinates]].to_numpy(),
                              dense_times)
    table = pd.DataFrame(values, index=pd.Index(dense_times, name="time"), columns=coordinates)
    table.attrs["in_degrees"] = False
    write_mot(path, table)
    return Path(path)


def run_inverse_dynamics_tool(model_path: str | Path, coordinates_mot: str | Path,
                              grf_mot: str | Path, workdir: str | Path,
                              exclude: list[str] | None = None) -> pd.DataFrame:
    """Generalized forces from OpenSim's InverseDynamicsTool (`<coord>_moment` / `_force`
    columns, N*m / N, indexed by time), GRFs applied to calcn_r / calcn_l.

    `exclude`: force names or groups to leave out; by default the model's actuators and its
    SmoothSphereHalfSpaceForce contact spheres (see the module docstring)."""
    import opensim

    from .moco_track import write_external_loads

    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    model = opensim.Model(str(model_path))
    if exclude is None:
        exclude = ["Actuators"] + [
            f.getName() for f in model.getComponentsList()
            if f.getConcreteClassName() == "SmoothSphereHalfSpaceForce"]
    loads = write_external_loads(grf_mot, workdir / "external_loads.xml")
    times = read_sto(grf_mot).index   # the span with loads; the kinematics may be padded
    tool = opensim.InverseDynamicsTool()
    tool.setModel(model)
    tool.setCoordinatesFileName(str(Path(coordinates_mot).resolve()))
    tool.setExternalLoadsFileName(str(loads))
    tool.setLowpassCutoffFrequency(-1)  # no filtering: the kinematics are already smooth
    tool.setStartTime(float(times[0]))
    tool.setEndTime(float(times[-1]))
    excluded = opensim.ArrayStr()
    for name in exclude:
        excluded.append(name)
    tool.setExcludedForces(excluded)
    tool.setResultsDir(str(workdir))
    tool.setOutputGenForceFileName("inverse_dynamics.sto")
    if not tool.run():
        raise RuntimeError(f"InverseDynamicsTool failed on {coordinates_mot}; see the log")
    return read_sto(workdir / "inverse_dynamics.sto")


def compare_with_tool(kinematics: pd.DataFrame, kinetics: pd.DataFrame, model_path: str | Path,
                      workdir: str | Path) -> dict[str, float]:
    """RMS difference (N*m or N) per generalized force between a solution's torques
    (`kinetics`) and the InverseDynamicsTool's on the same kinematics and GRFs, at the
    solution's own times."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    coordinates = [c[: -len("_speed")] for c in kinematics.columns if c.endswith("_speed")]
    dense = write_dense_kinematics(kinematics, coordinates, workdir / "dense_kinematics.mot")
    grf_columns = [c for c in kinetics.columns if c.startswith("ground_")]
    grf = kinetics[grf_columns].copy()
    # Unloaded feet have no centre of pressure (NaN); any point gives a zero force there.
    write_mot(workdir / "grf.mot", grf.fillna(0.0))
    tool = run_inverse_dynamics_tool(model_path, dense, workdir / "grf.mot", workdir)
    out = {}
    for column in tool.columns:
        if column not in kinetics:
            continue
        at_solution = np.interp(kinetics.index, tool.index, tool[column])
        out[column] = float(np.sqrt(np.mean((at_solution - kinetics[column].to_numpy()) ** 2)))
    return out
