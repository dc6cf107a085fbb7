"""Inverse kinematics: a Trial's markers and a model -> coordinates, with OpenSim's own solver.

A thin wrapper over `opensim.InverseKinematicsSolver` (the engine of the InverseKinematicsTool):
weighted least squares of marker errors per frame, each frame starting from the last. Markers
that are NaN in a frame (gaps) are left out of that frame, as OpenSim does.

    result = inverse_kinematics(model, trial, weights={"RASI": 10.0})
    result.coordinates     # index time (s); OpenSim coordinate names; rad and m
    result.errors          # marker_rmse_m, marker_max_m, markers_used per frame
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import opensim
import pandas as pd

from pipeline.errors import ModelError
from pipeline.trial import Trial

PELVIS_MARKERS = ("RASI", "LASI", "RPSI", "LPSI", "SACR")


@dataclass
class IKResult:
    """coordinates: index time (s), one column per model coordinate (rad, m).
    errors: index time, columns marker_rmse_m, marker_max_m (m) and markers_used."""

    coordinates: pd.DataFrame
    errors: pd.DataFrame


def _markers_table(trial: Trial, names: list[str]) -> opensim.TimeSeriesTableVec3:
    table = opensim.TimeSeriesTableVec3()
    table.setColumnLabels(tuple(names))      # a tuple: SWIG's StdVectorString is ambiguous
    xyz = trial.markers[[f"{n}_{a}" for n in names for a in "xyz"]].to_numpy(dtype=float)
    xyz = xyz.reshape(len(xyz), len(names), 3)
    for time, frame in zip(trial.markers.index.to_numpy(dtype=float), xyz, strict=True):
        row = opensim.RowVectorVec3(len(names))
        for j, p in enumerate(frame):
            row[j] = opensim.Vec3(*(float(v) for v in p))      # NaN = not seen this frame
        table.appendRow(float(time), row)
    table.addTableMetaDataString("Units", "m")
    return table


def _initial_pelvis(model, state, trial: Trial) -> None:
    """Start the pelvis at the pelvis markers' centre (IK from the origin can miss by metres)."""
    present = [m for m in PELVIS_MARKERS if f"{m}_x" in trial.markers]
    if not present:
        return
    first = trial.markers[[f"{m}_{a}" for m in present for a in "xyz"]].to_numpy(dtype=float)
    centre = np.nanmean(first.reshape(len(first), -1, 3)[:5], axis=(0, 1))
    coords = model.getCoordinateSet()
    for name, value in (("pelvis_tx", centre[0]), ("pelvis_tz", centre[2])):
        if coords.contains(name) and np.isfinite(value):
            coords.get(name).setValue(state, float(value), False)


def inverse_kinematics(model, trial: Trial, *, weights: dict | None = None,
                       default_weight: float = 1.0, accuracy: float = 1e-5) -> IKResult:
    """Solve IK for every frame of `trial` (markers in m, OpenSim frame) on `model`.

    weights: {marker name: weight}; markers not named get `default_weight`. Only markers both in
    the trial and on the model are used; at least 4 are needed. The model is not modified (a
    copy is solved). Raises ModelError when the marker sets do not overlap enough.
    """
    model = model.clone()
    state = model.initSystem()
    marker_set = model.getMarkerSet()
    names = [n for n in trial.marker_names if marker_set.contains(n)]
    if len(names) < 4:
        raise ModelError(f"only {len(names)} of the trial's markers are on the model",
                         trial=trial.name, hint="rename markers to the model's names")
    marker_weights = opensim.SetMarkerWeights()
    for name in names:
        w = float((weights or {}).get(name, default_weight))
        marker_weights.cloneAndAppend(opensim.MarkerWeight(name, w))
    reference = opensim.MarkersReference(_markers_table(trial, names), marker_weights)
    solver = opensim.InverseKinematicsSolver(model, reference,
                                             opensim.SimTKArrayCoordinateReference(), np.inf)
    solver.setAccuracy(accuracy)
    times = trial.markers.index.to_numpy(dtype=float)
    coords = model.getCoordinateSet()
    coord_list = [coords.get(i) for i in range(coords.getSize())]
    values = np.empty((len(times), len(coord_list)))
    errors = np.empty((len(times), 3))
    marker_errors = opensim.SimTKArrayDouble()
    index = {name: j for j, name in enumerate(names)}
    visible = np.isfinite(trial.markers[[f"{n}_x" for n in names]].to_numpy(dtype=float))
    state.setTime(float(times[0]))
    _initial_pelvis(model, state, trial)
    solver.assemble(state)
    for k, time in enumerate(times):
        state.setTime(float(time))
        solver.track(state)
        values[k] = [c.getValue(state) for c in coord_list]
        solver.computeCurrentMarkerErrors(marker_errors)
        seen = [i for i in range(marker_errors.size())
                if visible[k, index[solver.getMarkerNameForIndex(i)]]]
        squared = np.array([marker_errors.getElt(i) for i in seen]) ** 2
        errors[k] = (np.sqrt(squared.mean()) if len(squared) else np.nan,
                     np.sqrt(squared.max()) if len(squared) else np.nan, len(squared))
    index = pd.Index(times, name="time")
    coordinates = pd.DataFrame(values, index=index, columns=[c.getName() for c in coord_list])
    errs = pd.DataFrame(errors, index=index,
                        columns=["marker_rmse_m", "marker_max_m", "markers_used"])
    errs["markers_used"] = errs["markers_used"].astype(int)
    return IKResult(coordinates, errs)
