"""One entry point for raw trials: `load_trial(path)` -> Trial, whatever the lab exported.

.c3d: markers and force plates (pipeline.c3d); .trc with an optional `<trial>_grf.mot` beside it
(OpenSim's convention); .npz: an SMPL sequence (pipeline.smpl). Every path ends in the same
Trial: markers in metres in OpenSim's frame (Y up), GRF per foot at the marker times.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.c3d import POINT_UNITS, detect_up_axis, lab_to_opensim, read_c3d
from pipeline.errors import IngestError
from pipeline.foot_grf import (
    WrenchSeries,
    assign_feet,
    foot_grf,
    series_from_mot,
    series_from_plate,
)
from pipeline.forceplates import DEFAULT_THRESHOLD_N
from pipeline.signal import lowpass
from pipeline.trial import Trial, marker_names

GRF_SUFFIX = "_grf.mot"
DEFAULT_MIN_CONTACT_S = 0.05
DEFAULT_MAX_FOOT_DISTANCE_M = 0.3
# A body's markers span about 2 m in any one frame; 5 m means the file's units are wrong (mm
# written as m, or cm as mm), which IK would otherwise "solve" with kilometre errors.
MAX_MARKER_SPREAD_M = 5.0
SMPL_HINT = ("an AMASS-style .npz needs poses (frames, >=72), trans (frames, 3), betas (>=10) "
             "and mocap_framerate: re-export the sequence")
# Force-plate recordings must cover at least this share of the marker time range.
MIN_GRF_OVERLAP = 0.5


def rotate_markers(markers: pd.DataFrame, rotation: np.ndarray) -> pd.DataFrame:
    """Marker table with every position turned by `rotation` (v' = R v); same columns."""
    xyz = markers.to_numpy(dtype=np.float64).reshape(len(markers), -1, 3)
    out = pd.DataFrame((xyz @ rotation.T).reshape(len(markers), -1), index=markers.index,
                       columns=markers.columns)
    out.index.name = "time"
    return out


def load_trial(path, subject: str | None = None, *, name: str | None = None,
               up_axis: str | None = None, foot_markers=None,
               threshold_n: float = DEFAULT_THRESHOLD_N,
               min_contact_s: float = DEFAULT_MIN_CONTACT_S,
               max_foot_distance_m: float = DEFAULT_MAX_FOOT_DISTANCE_M,
               marker_cutoff_hz: float | None = None, grf_cutoff_hz: float | None = None,
               filter_order: int = 4, activity: str = "unknown", **smpl_options) -> Trial:
    """Read one raw trial into a Trial (markers m, OpenSim frame; GRF per foot at marker times).

    path: .c3d, .trc (+ `<trial>_grf.mot` beside it, if present) or .npz (SMPL).
    subject: defaults to the name of the folder holding the file; name: to the file stem.
    up_axis: the lab's vertical axis ("z", "y", "x", or "-z"...); None detects it (force-plate
        normal, else marker spread) for C3D and TRC files alike. It is turned onto OpenSim's +Y
        with `pipeline.c3d.lab_to_opensim` (for "z": (x, y, z) -> (x, z, -y)).
    foot_markers: which markers are feet, for assigning plates to feet: None (names with an R/L
        prefix containing HEE, HEEL, CAL, TOE, MT or MH), a list of substrings, or
        {"r": [names], "l": [names]}.
    threshold_n: vertical force (N) below which a plate or foot is unloaded: force and free
        moment 0, CoP NaN. min_contact_s: loaded runs shorter than this are noise, not steps.
    max_foot_distance_m: a contact whose CoP is farther than this from both feet is dropped
        (listed in trial.meta["contacts"] with side None).
    marker_cutoff_hz, grf_cutoff_hz: optional zero-lag Butterworth low-pass (order
        `filter_order`), NaN-aware; GRFs are always anti-alias filtered when downsampled.
    Raises IngestError naming the file for anything it cannot read or make sense of.
    """
    path = Path(path)
    if not path.exists():
        raise IngestError("file not found", file=path)
    suffix = path.suffix.lower()
    subject = subject or path.parent.name
    name = name or path.stem
    options = dict(up_axis=up_axis, foot_markers=foot_markers, threshold_n=threshold_n,
                   min_contact_s=min_contact_s, max_foot_distance_m=max_foot_distance_m)
    if suffix == ".c3d":
        markers, series, meta = _from_c3d(path, **options)
    elif suffix == ".trc":
        markers, series, meta = _from_trc(path, **options)
    elif suffix == ".npz":
        return _from_smpl(path, subject=subject, name=name, **smpl_options)
    else:
        raise IngestError(f"unsupported trial file type {path.suffix!r}", file=path,
                          hint="export .c3d, or .trc with <trial>_grf.mot, or an SMPL .npz")
    check_marker_spread(markers, path, meta.get("lab_units"))
    if marker_cutoff_hz:
        rate = 1.0 / float(np.median(np.diff(markers.index.to_numpy())))
        markers = pd.DataFrame(lowpass(markers.to_numpy(), rate, marker_cutoff_hz,
                                       filter_order), index=markers.index,
                               columns=markers.columns)
    grf = None
    if series:
        grf = foot_grf(series, meta["contacts"], markers.index.to_numpy(),
                       threshold_n=threshold_n, cutoff_hz=grf_cutoff_hz, order=filter_order)
    meta.update(marker_cutoff_hz=marker_cutoff_hz, grf_cutoff_hz=grf_cutoff_hz,
                filter_order=filter_order, threshold_n=threshold_n)
    return Trial(subject=subject, name=name, markers=markers, grf=grf, source=path,
                 activity=activity, meta=meta)


def check_marker_spread(markers: pd.DataFrame, path: Path, units: str | None) -> None:
    """Reject positions whose scale is not a body's: the median over frames of the largest
    extent (m) of the markers seen in a frame must stay under MAX_MARKER_SPREAD_M."""
    xyz = markers.to_numpy(dtype=np.float64).reshape(len(markers), -1, 3)
    if xyz.shape[1] < 2:
        return
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no marker seen
        extent = np.nanmax(np.nanmax(xyz, axis=1) - np.nanmin(xyz, axis=1), axis=1)
    extent = extent[np.isfinite(extent)]
    if len(extent) and float(np.median(extent)) > MAX_MARKER_SPREAD_M:
        raise IngestError(f"markers spread over {float(np.median(extent)):.1f} m in a typical "
                          f"frame (a body spans about 2 m): the declared units {units!r} do "
                          "not match the data", file=path,
                          hint="fix the units on export (POINT:UNITS in C3D, Units in TRC)")


def check_grf_overlap(grf_times: np.ndarray, marker_times: np.ndarray, path: Path) -> None:
    """Force plates and markers must describe the same recording: the plates' time range has
    to cover at least MIN_GRF_OVERLAP of the markers' (s)."""
    span = float(marker_times[-1] - marker_times[0]) if len(marker_times) > 1 else 0.0
    overlap = (min(float(grf_times[-1]), float(marker_times[-1]))
               - max(float(grf_times[0]), float(marker_times[0])))
    if span > 0 and overlap < MIN_GRF_OVERLAP * span:
        raise IngestError(f"force-plate data cover {grf_times[0]:.2f}-{grf_times[-1]:.2f} s "
                          f"but the markers {marker_times[0]:.2f}-{marker_times[-1]:.2f} s: "
                          "they are not the same recording", file=path,
                          hint="export the GRF file of this trial, with the markers' time base")


def opensim_rotation(markers: pd.DataFrame, plates, up_axis: str | None):
    """(up_axis, detected, R): the lab's up axis (given, or detected from plates or markers) and
    the rotation v_opensim = R @ v_lab that puts it on OpenSim's +Y."""
    detected = up_axis is None
    if detected:
        try:
            up_axis = detect_up_axis(markers, plates)
        except ValueError as err:
            raise IngestError(str(err)) from None
    try:
        rotation = lab_to_opensim(up_axis)
    except ValueError as err:
        raise IngestError(str(err), hint="pass up_axis as x, y, z, -x, -y or -z") from None
    return up_axis, detected, rotation


def _contacts(series: list[WrenchSeries], markers: pd.DataFrame, path: Path, **options):
    return assign_feet(series, markers, foot_markers=options["foot_markers"],
                       threshold_n=options["threshold_n"],
                       min_contact_s=options["min_contact_s"],
                       max_distance_m=options["max_foot_distance_m"], file=path)


def _from_c3d(path: Path, **options):
    rec = read_c3d(path, threshold_n=options["threshold_n"])
    up_axis, detected, rotation = opensim_rotation(rec.markers, rec.plates, options["up_axis"])
    markers = rotate_markers(rec.markers, rotation)
    meta = {"format": "c3d", "lab_units": rec.units, "up_axis": up_axis,
            "up_axis_detected": detected, "lab_to_opensim": rotation.tolist(),
            "point_rate_hz": rec.point_rate, "analog_rate_hz": rec.analog_rate,
            "first_frame": rec.meta["first_frame"],
            "plates": [{"index": p.index, "type": p.type, "centre_m": p.centre.tolist()}
                       for p in rec.plates]}
    series = [series_from_plate(p, rotation) for p in rec.plates]
    if series:
        meta["contacts"] = _contacts(series, markers, path, **options)
    return markers, series, meta


def _from_trc(path: Path, **options):
    from pipeline.opensim_files import read_mot, read_trc

    df = read_trc(path)
    units = str(df.attrs.get("units", "")).strip()
    if units.lower() not in POINT_UNITS:
        raise IngestError(f"unknown marker units {units!r} in the TRC header", file=path,
                          hint="set Units to mm, cm or m")
    if df.shape[1] == 0:
        raise IngestError("no markers in the file", file=path)
    if df.isna().all().all():
        raise IngestError("every marker is missing in every frame", file=path)
    lab = df * POINT_UNITS[units.lower()]
    lab.attrs = {}
    grf_path = path.with_name(path.stem + GRF_SUFFIX)
    mot = read_mot(grf_path) if grf_path.exists() else None
    up_axis, detected, rotation = opensim_rotation(lab, [], options["up_axis"])
    markers = rotate_markers(lab, rotation)
    meta = {"format": "trc", "lab_units": units, "up_axis": up_axis,
            "up_axis_detected": detected, "lab_to_opensim": rotation.tolist(),
            "point_rate_hz": float(df.attrs.get("data_rate", np.nan)),
            "grf_file": str(grf_path) if mot is not None else None}
    series = []
    if mot is not None:
        series = series_from_mot(mot, rotation, options["threshold_n"], file=grf_path)
        if not series:
            raise IngestError("no force columns (...force_vx) in the GRF file", file=grf_path,
                              hint="name them as OpenSim does: ground_force_r_vx ...")
        check_grf_overlap(series[0].times, markers.index.to_numpy(dtype=float), grf_path)
        meta["contacts"] = _contacts(series, markers, grf_path, **options)
    return markers, series, meta


def _from_smpl(path: Path, **options) -> Trial:
    try:
        from pipeline.smpl import load_smpl_trial
    except ImportError:
        raise IngestError("SMPL .npz trials are not supported in this installation "
                          "(pipeline.smpl.load_smpl_trial is missing)", file=path,
                          hint="convert the sequence to .trc, or update the pipeline") from None
    try:
        return load_smpl_trial(path, **options)
    except IngestError as exc:  # the SMPL reader says what is wrong; say what to do as well
        if exc.hint:
            raise
        raise IngestError(exc.problem, file=exc.file or path, trial=exc.trial,
                          hint=SMPL_HINT) from exc


def summarise_markers(markers: pd.DataFrame) -> dict:
    """Facts for a report: marker count and names, frames, rate (Hz), duration (s)."""
    t = markers.index.to_numpy()
    rate = 1.0 / float(np.median(np.diff(t))) if len(t) > 1 else float("nan")
    return {"markers": marker_names(markers.columns), "frames": len(markers), "rate_hz": rate,
            "duration_s": float(t[-1] - t[0]) if len(t) else 0.0}
