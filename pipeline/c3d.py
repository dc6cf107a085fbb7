"""Reading C3D files (through ezc3d) into markers and force plates, and the lab-to-OpenSim frame.

`read_c3d` keeps the lab's frame (as OpenSim's own C3DFileAdapter does) and converts to SI units;
`lab_to_opensim` gives the rotation that puts the lab's up axis on OpenSim's Y.
"""
from __future__ import annotations

import multiprocessing
import struct
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import IngestError
from pipeline.forceplates import DEFAULT_THRESHOLD_N, LENGTH_UNITS, ForcePlate, read_force_plates
from pipeline.trial import marker_columns

# POINT:UNITS spellings seen in lab files, to metres.
POINT_UNITS = {**LENGTH_UNITS, "millimeters": 1e-3, "millimetres": 1e-3, "centimeters": 1e-2,
               "centimetres": 1e-2, "meters": 1.0, "metres": 1.0}
# POINT groups that list labels of computed (non-marker) points: Vicon's model outputs.
NON_MARKER_GROUPS = ("ANGLES", "FORCES", "MOMENTS", "POWERS", "SCALARS", "REACTIONS")
UP_AXES = ("x", "y", "z", "-x", "-y", "-z")


@dataclass
class C3DRecording:
    """What a C3D file holds, in the lab frame and SI units.

    markers: index `time` (s, first frame at 0 as in OpenSim), columns `<marker>_x/_y/_z`, m,
        NaN where the marker was not seen (negative residual, or exactly 0, 0, 0).
    plates: force plates with their wrenches at the analog rate (see pipeline.forceplates).
    units: POINT:UNITS as written in the file. meta: header facts (first frame, labels, ...).
    """

    path: Path
    markers: pd.DataFrame
    plates: list[ForcePlate]
    point_rate: float
    analog_rate: float
    units: str
    meta: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return len(self.markers)

    @property
    def duration_s(self) -> float:
        return (self.n_frames - 1) / self.point_rate if self.n_frames else 0.0


def _check_header(path: Path, data: bytes) -> None:
    """Reject what ezc3d would misread: empty, non-C3D and truncated files."""
    if len(data) == 0:
        raise IngestError("file is empty", file=path, hint="re-export the trial")
    if len(data) < 512 or data[1] != 0x50 or data[0] < 2:
        raise IngestError("not a C3D file (bad header: byte 2 must be 0x50)", file=path,
                          hint="check that the file is a C3D export and was copied completely")
    param_start = (data[0] - 1) * 512
    if len(data) < param_start + 4:
        raise IngestError(f"C3D file is truncated ({len(data)} bytes, parameters expected at "
                          f"byte {param_start})", file=path, hint="copy the file again")
    if len(data) < param_start + data[param_start + 2] * 512:
        raise IngestError(f"C3D file is truncated ({len(data)} bytes) inside its parameter "
                          "section", file=path, hint="copy or export the trial again")
    processor = data[param_start + 3]
    if processor not in (84, 85, 86):
        raise IngestError(f"not a C3D file (unknown processor type {processor} in the "
                          "parameter section)", file=path)
    _check_parameter_section(path, data, param_start, "<" if processor != 86 else ">")
    if processor != 84:  # DEC/MIPS files: ezc3d reads them; skip our Intel-only size check
        return
    n_points, n_analog = struct.unpack_from("<HH", data, 2)
    first, last = struct.unpack_from("<HH", data, 6)
    scale = struct.unpack_from("<f", data, 12)[0]
    data_start, per_frame = struct.unpack_from("<HH", data, 16)
    n_frames = last - first + 1
    if last == 0xFFFF or n_frames <= 0 or data_start == 0:
        return  # long files keep their length in TRIAL:ACTUAL_END_FIELD: ezc3d checks those
    word = 4 if scale < 0 else 2
    needed = (data_start - 1) * 512 + n_frames * (4 * n_points + n_analog) * word
    if len(data) < needed:
        raise IngestError(f"C3D file is truncated: {len(data)} bytes but the header describes "
                          f"{n_frames} frames needing {needed} bytes", file=path,
                          hint="copy or export the trial again")


def _check_parameter_section(path: Path, data: bytes, start: int, endian: str) -> None:
    """Walk the parameter records (C3D manual, ch. 3) without interpreting them: a corrupt
    section can send ezc3d into an endless loop or a huge allocation, so bad names, types,
    dimensions or links are rejected here first."""
    end = min(len(data), start + max(data[start + 2], 1) * 512)

    def corrupt(why: str) -> IngestError:
        return IngestError(f"corrupt C3D parameter section ({why})", file=path,
                           hint="copy or export the trial again")

    pos, records = start + 4, 0
    while True:
        if pos + 2 > end:
            raise corrupt(f"record at byte {pos} runs past the section")
        n_chars, ident = struct.unpack_from("bb", data, pos)
        if n_chars == 0:
            return
        name_end = pos + 2 + abs(n_chars)
        if ident == 0 or name_end + 2 > end:
            raise corrupt(f"bad record header at byte {pos}")
        if not all(32 < ch < 127 for ch in data[pos + 2:name_end]):
            raise corrupt(f"unprintable name at byte {pos}")
        (offset,) = struct.unpack_from(endian + "h", data, name_end)
        if ident > 0:  # a parameter: type, dimensions, values must fit in the section
            if name_end + 4 > end:
                raise corrupt(f"parameter at byte {pos} runs past the section")
            kind, n_dims = struct.unpack_from("bB", data, name_end + 2)
            if kind not in (-1, 1, 2, 4):
                raise corrupt(f"unknown value type {kind} at byte {pos}")
            dims = data[name_end + 4:name_end + 4 + n_dims]
            size = abs(kind) * int(np.prod([int(d) for d in dims])) if n_dims else abs(kind)
            if name_end + 4 + n_dims + size > end:
                raise corrupt(f"parameter at byte {pos} is larger than the section")
        if offset == 0:
            return
        pos = name_end + offset
        records += 1
        if offset < 0 or pos > end or records > 65535:
            raise corrupt(f"bad link to the next record at byte {name_end}")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _value(params, group: str, name: str, default=None):
    try:
        return params[group][name]["value"]
    except KeyError:
        return default


def _labels(params, group: str, name: str) -> list[str]:
    """A label list, continued over LABELS2, LABELS3, ... as C3D allows past 255 entries."""
    out = [str(x).strip() for x in np.ravel(_value(params, group, name, []))]
    k = 2
    while name + str(k) in params.get(group, {}):
        out += [str(x).strip() for x in np.ravel(params[group][name + str(k)]["value"])]
        k += 1
    return out


def read_c3d(path, *, threshold_n: float = DEFAULT_THRESHOLD_N) -> C3DRecording:
    """Markers (m) and force plates (N, m, N·m) of a C3D file, in the lab frame.

    threshold_n: vertical load below which a plate counts as unloaded (CoP undefined there).
    Raises IngestError, naming the file, for empty, truncated or corrupt files, files without
    markers or with every marker missing, unknown POINT:UNITS, and force-plate descriptions that
    do not match the analog channels.
    """
    import ezc3d

    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise IngestError(f"cannot read file: {err.strerror or err}", file=path) from err
    _check_header(path, data)
    try:
        c3d = ezc3d.c3d(str(path))
    except Exception as err:  # ezc3d raises RuntimeError, IOError, ValueError... on bad files
        raise IngestError(f"not a readable C3D file: {err}", file=path,
                          hint="copy or export the trial again") from None

    params = c3d["parameters"]
    point_rate = float(np.ravel(_value(params, "POINT", "RATE", [0]))[0] or 0)
    if point_rate <= 0:
        raise IngestError("POINT:RATE is missing or zero", file=path)
    units_raw = np.ravel(_value(params, "POINT", "UNITS", []))
    units = str(units_raw[0]).strip() if units_raw.size else ""
    if units.lower() not in POINT_UNITS:
        raise IngestError(f"unknown marker units POINT:UNITS={units!r}", file=path,
                          hint="expected mm, cm or m; set POINT:UNITS on export")
    scale = POINT_UNITS[units.lower()]

    labels = _labels(params, "POINT", "LABELS")
    points = c3d["data"]["points"]  # (4, points, frames)
    residuals = c3d["data"]["meta_points"]["residuals"][0]  # (points, frames)
    computed = set()
    for group in NON_MARKER_GROUPS:
        computed |= {x for x in _labels(params, "POINT", group) if x}
    keep = [i for i, name in enumerate(labels[:points.shape[1]])
            if name and name not in computed and not name.startswith("*")]
    if not keep or points.shape[2] == 0:
        raise IngestError("no markers in the file (POINT:USED is 0 or no frames)", file=path,
                          hint="export the labelled marker trajectories")
    names = [labels[i] for i in keep]
    garbled = [n for n in names if not (n.isprintable() and _encodable(n))]
    if garbled:
        raise IngestError(f"corrupt marker labels ({len(garbled)} unreadable names)", file=path,
                          hint="copy or export the trial again")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise IngestError(f"duplicate marker labels {dupes}", file=path,
                          hint="rename the markers in the capture software")
    xyz = np.transpose(points[:3, keep, :], (2, 1, 0)).astype(np.float64)  # (frames, m, 3)
    res = residuals[keep, :].T
    missing = (res < 0) | np.all(xyz == 0, axis=2) | ~np.isfinite(xyz).all(axis=2)
    xyz[missing] = np.nan
    if missing.all():
        raise IngestError("every marker is missing in every frame", file=path,
                          hint="the trial holds no tracked data; check the export")
    # A subject prefix ("Sub01:RHEE") shared by every marker is dropped.
    prefixes = {n.rpartition(":")[0] for n in names}
    if len(prefixes) == 1 and prefixes != {""}:
        names = [n.rpartition(":")[2] for n in names]

    n_frames = xyz.shape[0]
    times = np.arange(n_frames) / point_rate
    markers = pd.DataFrame(xyz.reshape(n_frames, -1) * scale,
                           index=pd.Index(times, name="time"), columns=marker_columns(names))

    analogs = c3d["data"]["analogs"][0]  # (channels, samples), scaled by ezc3d
    analog_rate = float(np.ravel(_value(params, "ANALOG", "RATE", [0]))[0] or 0)
    plates: list[ForcePlate] = []
    if analogs.size and analog_rate > 0:
        ratio = analog_rate / point_rate
        if abs(ratio - round(ratio)) > 1e-6:
            raise IngestError(f"analog rate {analog_rate} Hz is not a multiple of the marker "
                              f"rate {point_rate} Hz", file=path)
        plates = read_force_plates(params, analogs, analog_rate, scale, file=path,
                                   threshold_n=threshold_n)
    elif _value(params, "FORCE_PLATFORM", "USED") is not None and \
            int(np.ravel(_value(params, "FORCE_PLATFORM", "USED"))[0] or 0) > 0:
        raise IngestError("FORCE_PLATFORM:USED lists force plates but the file has no analog "
                          "data", file=path)

    meta = {"first_frame": int(c3d["header"]["points"]["first_frame"]) + 1,
            "n_frames": n_frames, "marker_labels": names,
            "analog_labels": _labels(params, "ANALOG", "LABELS"),
            "skipped_points": [labels[i] for i in range(len(labels)) if i not in keep]}
    return C3DRecording(path=path, markers=markers, plates=plates, point_rate=point_rate,
                        analog_rate=analog_rate, units=units, meta=meta)


def lab_to_opensim(up_axis: str) -> np.ndarray:
    """Rotation matrix R (proper, det +1) with v_opensim = R @ v_lab, putting `up_axis` on +Y.

    "z" (most labs): (x, y, z) -> (x, z, -y), a -90° turn about X; the lab's X stays OpenSim's X.
    "y": identity. "x": (x, y, z) -> (-y, x, z). "-z", "-y", "-x" likewise for labs whose axis
    points down. Horizontal axes otherwise keep the lab's orientation.
    """
    rows = {"y": [[1, 0, 0], [0, 1, 0], [0, 0, 1]],
            "z": [[1, 0, 0], [0, 0, 1], [0, -1, 0]],
            "x": [[0, -1, 0], [1, 0, 0], [0, 0, 1]],
            "-y": [[1, 0, 0], [0, -1, 0], [0, 0, -1]],
            "-z": [[1, 0, 0], [0, 0, -1], [0, 1, 0]],
            "-x": [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]}
    key = str(up_axis).strip().lower().lstrip("+")
    if key not in rows:
        raise ValueError(f"up axis must be one of {UP_AXES}, got {up_axis!r}")
    return np.array(rows[key], dtype=np.float64)


def detect_up_axis(markers: pd.DataFrame, plates: list[ForcePlate] = ()) -> str:
    """The lab's vertical axis: from the force plates' surface normal where there are plates,
    else the axis along which the markers of a frame spread most (a person is taller than wide
    or deep; median over frames). The marker rule cannot tell up from down and assumes +."""
    if plates:
        n = np.mean([p.normal for p in plates], axis=0)
        k = int(np.argmax(np.abs(n)))
        return ("-" if n[k] < 0 else "") + "xyz"[k]
    xyz = markers.to_numpy(dtype=np.float64).reshape(len(markers), -1, 3)
    with warnings.catch_warnings():  # frames with no marker seen give NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        spread = np.nanmax(xyz, axis=1) - np.nanmin(xyz, axis=1)  # (frames, 3)
    spread = spread[np.isfinite(spread).all(axis=1)]
    if len(spread) == 0:
        raise ValueError("no frame with markers to detect the vertical axis from")
    return "xyz"[int(np.argmax(np.median(spread, axis=0)))]


def save_c3d(c3d, path: str | Path) -> Path:
    """Write an ezc3d object to `path` from a forked child process.

    ezc3d's `write()` corrupts the SWIG type table that other SWIG modules of the same process
    rely on: afterwards OpenSim calls taking vector arguments (`StdVectorString` for
    ModOpReplaceJointsWithWelds, MocoTrajectory, `Function.calcDerivative`) raise TypeError.
    A fork shares the object without pickling and takes the corruption with it when it exits.
    """
    return _write_in_child("fork", c3d.write, (), Path(path))


def _write_in_child(method: str, target, args: tuple, path: Path) -> Path:
    """Run target(str(path), *args) in a child process (`method`: fork or spawn)."""
    child = multiprocessing.get_context(method).Process(target=target, args=(str(path), *args))
    child.start()
    child.join()
    if child.exitcode != 0 or not path.exists():
        raise IngestError(f"ezc3d could not write the C3D file (exit code {child.exitcode})",
                          file=path)
    return path


def _write_points(path: str, labels: list[str], points: np.ndarray, rate_hz: float,
                  units: str) -> None:
    import ezc3d

    c3d = ezc3d.c3d()
    c3d["parameters"]["POINT"]["RATE"]["value"] = [float(rate_hz)]
    c3d["parameters"]["POINT"]["LABELS"]["value"] = list(labels)
    c3d["parameters"]["POINT"]["UNITS"]["value"] = [units]
    c3d["data"]["points"] = points
    c3d.write(path)


def write_points_c3d(path: str | Path, labels: list[str], positions: np.ndarray, rate_hz: float,
                     units: str = "mm") -> Path:
    """A C3D of marker trajectories, positions (frames, markers, 3) already in `units` and the
    lab frame (NaN = missing), built and written in a fresh interpreter (spawn).

    The SWIG trap goes both ways: after OpenSim has loaded some models in a process (the
    80-muscle example3DWalking model, for one), ezc3d's own `Parameter.set` overloads fail there
    and in its forks. A spawned child imports ezc3d alone."""
    points = np.ones((4, len(labels), len(positions)))
    points[:3] = np.transpose(np.asarray(positions, dtype=np.float64), (2, 1, 0))
    return _write_in_child("spawn", _write_points,
                           (list(labels), points, float(rate_hz), units), Path(path))
