"""OpenSim's text formats to and from pandas: TRC (marker trajectories), STO and MOT (tables).

Readers return a DataFrame indexed by `time` (s) with the metadata of the header in `df.attrs`;
values are never converted on read (a TRC in mm stays in mm, a MOT with `inDegrees=yes` stays in
degrees): `to_radians` and the Trial's ingest do that explicitly. Writers produce what OpenSim's
own readers (`TRCFileAdapter`, `STOFileAdapter`, `Storage`) accept, with every float written in
its shortest exact form, so writing then reading returns the same numbers bit for bit.
See docs/file_formats.md for the header variants accepted and the column conventions.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.errors import IngestError
from pipeline.trial import marker_columns, marker_names

# Header keys the writer recomputes, or that belong to the pre-4.0 format (stale once rewritten).
_STO_COMPUTED_KEYS = {"version", "nrows", "ncolumns", "indegrees", "datarows", "datacolumns",
                      "range", "name"}
_TRC_KEYS = ("DataRate", "CameraRate", "NumFrames", "NumMarkers", "Units", "OrigDataRate",
             "OrigDataStartFrame", "OrigNumFrames")
_TRANSLATION = re.compile(r"_t[xyz]$")
_DERIVATIVE_SUFFIXES = ("_speed", "_accel", "_u", "_udot")
# Pre-4.0 Storage headers: `name <x>`, `datacolumns <n>`, `datarows <n>`, `range <t0> <t1>`.
_OLD_HEADER = re.compile(r"^(name|datacolumns|datarows|range)\s+\S")


def _read_lines(path: Path) -> list[str]:
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise IngestError(f"cannot read file: {err.strerror or err}", file=path) from err
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:  # older Windows exports write marker names in Latin-1
        text = raw.decode("latin-1")
    if not text.strip():
        raise IngestError("file is empty", file=path, hint="re-export the trial")
    # split on newlines only: str.splitlines() would also break at characters such as U+0085
    return [line.rstrip("\r") for line in text.split("\n")]


def _parse_rows(lines: list[tuple[int, str]], n_fields: int, sep: str | None,
                path: Path) -> np.ndarray:
    """Numeric rows (rows, n_fields) from (line number, text) pairs; empty fields become NaN.

    Trailing blank fields beyond `n_fields` (stray tabs at the end of a row) are dropped; any
    other difference in field count is a ragged row and an error naming the line.
    """
    cells: list[str] = []
    for number, line in lines:
        fields = line.split(sep)
        if len(fields) > n_fields and not any(f.strip() for f in fields[n_fields:]):
            fields = fields[:n_fields]
        if len(fields) != n_fields:
            raise IngestError(f"ragged row at line {number}: {len(fields)} fields, expected "
                              f"{n_fields} from the column labels", file=path,
                              hint="check the export; every row needs one value (or an empty "
                                   "field) per column")
        cells.extend(f if f.strip() else "nan" for f in fields)
    try:
        values = np.array(cells, dtype=np.float64)
    except ValueError:
        for number, line in lines:
            for field in line.split(sep)[:n_fields]:
                try:
                    float(field) if field.strip() else None
                except ValueError:
                    raise IngestError(f"non-numeric value {field.strip()!r} at line {number}",
                                      file=path) from None
        raise IngestError("non-numeric values in the data rows", file=path) from None
    return values.reshape(len(lines), n_fields)


def _data_lines(lines: list[str], start: int) -> list[tuple[int, str]]:
    """Non-blank lines from index `start`, with 1-based line numbers, `\\r` stripped."""
    return [(i + 1, line.rstrip("\r\n")) for i, line in enumerate(lines[start:], start)
            if line.strip()]


def _format(value: float) -> str:
    """Shortest text that parses back to exactly `value` (OpenSim reads `NaN`)."""
    return "NaN" if math.isnan(value) else repr(value)


def _check_no_infinity(values: np.ndarray, what: str) -> None:
    # OpenSim's readers turn any spelling of infinity into NaN: refuse rather than corrupt.
    if np.isinf(values).any():
        raise ValueError(f"{what} holds infinite values, which OpenSim reads back as NaN; "
                         "replace them (NaN marks missing data)")


def _time_index(times: np.ndarray, path: Path) -> pd.Index:
    if np.isnan(times).any():
        raise IngestError("time column has missing values", file=path)
    return pd.Index(times, name="time", dtype=np.float64)


# --------------------------------------------------------------------------------------- TRC

def read_trc(path) -> pd.DataFrame:
    """Marker trajectories from a TRC file, in the file's units (not converted).

    Returns a frame indexed by `time` (s) with columns `<marker>_x/_y/_z`; missing markers (empty
    fields or `NaN`) are NaN. `df.attrs`: `units` (e.g. "mm"), `data_rate`, `camera_rate`,
    `orig_data_rate` (Hz), `orig_data_start_frame`, `orig_num_frames`, `source`, and
    `frame_numbers` (list of int) only where the Frame# column is not simply 1..N.
    """
    path = Path(path)
    lines = _read_lines(path)
    if not lines[0].strip().startswith("PathFileType"):
        raise IngestError("not a TRC file: the first line must start with 'PathFileType'",
                          file=path)
    if len(lines) < 5:
        raise IngestError(f"malformed TRC header: {len(lines)} lines, a TRC header has 5",
                          file=path)
    keys, values = lines[1].split(), lines[2].split()
    if len(keys) != len(values):
        raise IngestError(f"malformed TRC header: {len(keys)} keys on line 2 but {len(values)} "
                          "values on line 3", file=path)
    meta = dict(zip(keys, values, strict=True))
    missing = [k for k in ("DataRate", "NumMarkers", "Units") if k not in meta]
    if missing:
        raise IngestError(f"malformed TRC header: line 2 lacks {', '.join(missing)}", file=path,
                          hint=f"the header keys are {' '.join(_TRC_KEYS)}")
    try:
        n_markers = int(meta["NumMarkers"])
        rates = {k: float(meta[k]) for k in ("DataRate", "CameraRate", "OrigDataRate")
                 if k in meta}
        frames_meta = {k: int(float(meta[k])) for k in ("NumFrames", "OrigDataStartFrame",
                                                        "OrigNumFrames") if k in meta}
    except ValueError as err:
        raise IngestError(f"malformed TRC header values on line 3: {err}", file=path) from None

    # Labels are padded with empty fields (one name per three columns): drop the blanks.
    labels = [f.strip() for f in lines[3].split("\t") if f.strip()]
    if labels[:2] != ["Frame#", "Time"]:
        raise IngestError(f"malformed TRC header: line 4 must start with 'Frame#' and 'Time', "
                          f"found {labels[:2]}", file=path)
    names = labels[2:]
    if len(names) != n_markers:
        raise IngestError(f"malformed TRC header: NumMarkers is {n_markers} but line 4 names "
                          f"{len(names)} markers", file=path)
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise IngestError(f"duplicate marker names {dupes}", file=path)
    axes = [f.strip() for f in lines[4].split("\t") if f.strip()]
    expected_axes = [f"{a}{i}" for i in range(1, n_markers + 1) for a in "XYZ"]
    if [a.upper() for a in axes] != expected_axes:
        raise IngestError("malformed TRC header: line 5 must hold X1 Y1 Z1 ... "
                          f"Z{n_markers}", file=path)

    rows = _data_lines(lines, 5)
    if not rows:
        raise IngestError("TRC file has a header but no data rows", file=path)
    data = _parse_rows(rows, 2 + 3 * n_markers, "\t", path)
    if "NumFrames" in frames_meta and frames_meta["NumFrames"] != len(data):
        warnings.warn(f"{path}: header says NumFrames={frames_meta['NumFrames']} but the file "
                      f"has {len(data)} rows; using the rows", stacklevel=2)
    df = pd.DataFrame(data[:, 2:], index=_time_index(data[:, 1], path),
                      columns=marker_columns(names))
    attrs = {"units": meta["Units"], "data_rate": rates["DataRate"],
             "camera_rate": rates.get("CameraRate", rates["DataRate"]),
             "orig_data_rate": rates.get("OrigDataRate", rates["DataRate"]),
             "orig_data_start_frame": frames_meta.get("OrigDataStartFrame", 1),
             "orig_num_frames": frames_meta.get("OrigNumFrames", len(data)),
             "source": str(path)}
    frames = data[:, 0]
    if not np.isnan(frames).any() and not np.array_equal(frames, np.arange(1, len(data) + 1)):
        attrs["frame_numbers"] = [int(f) for f in frames]
    df.attrs = attrs
    return df


def write_trc(path, df: pd.DataFrame, *, units: str | None = None,
              data_rate: float | None = None) -> None:
    """Write marker trajectories as a TRC file that OpenSim's TRCFileAdapter reads.

    df: index time (s), columns `<marker>_x/_y/_z` in marker order, values in `units`.
    units: defaults to df.attrs["units"], else "m" (values are written as they are, never scaled).
    data_rate: Hz; defaults to df.attrs["data_rate"], else 1 / median time step.
    Missing positions are written as `NaN` (OpenSim rejects empty fields at the end of a row).
    """
    path = Path(path)
    names = marker_names(df.columns)
    if list(df.columns) != marker_columns(names):
        raise ValueError("write_trc needs columns <marker>_x, <marker>_y, <marker>_z in that "
                         f"order for every marker; got {list(df.columns)[:6]}...")
    if any("\t" in n or "\n" in n for n in names):
        raise ValueError("marker names cannot contain tabs or newlines")
    attrs = df.attrs
    times = np.asarray(df.index, dtype=np.float64)
    units = units or attrs.get("units") or "m"
    if data_rate is None:
        data_rate = attrs.get("data_rate")
    if data_rate is None:
        if len(times) < 2:
            raise ValueError("data_rate is needed for a single-frame TRC")
        data_rate = 1.0 / float(np.median(np.diff(times)))
    frames = attrs.get("frame_numbers")
    if frames is None or len(frames) != len(df):
        frames = range(1, len(df) + 1)
    header = {"DataRate": data_rate, "CameraRate": attrs.get("camera_rate", data_rate),
              "NumFrames": len(df), "NumMarkers": len(names), "Units": units,
              "OrigDataRate": attrs.get("orig_data_rate", data_rate),
              "OrigDataStartFrame": attrs.get("orig_data_start_frame", 1),
              "OrigNumFrames": attrs.get("orig_num_frames", len(df))}
    out = [f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
           "\t".join(_TRC_KEYS),
           "\t".join(_format(float(v)) if isinstance(v, float) else str(v)
                     for v in header.values()),
           "Frame#\tTime\t" + "".join(f"{n}\t\t\t" for n in names).rstrip("\t"),
           "\t\t" + "\t".join(f"{a}{i}" for i in range(1, len(names) + 1) for a in "XYZ"),
           ""]
    values = df.to_numpy(dtype=np.float64)
    _check_no_infinity(values, "write_trc: the table")
    _check_no_infinity(times, "write_trc: the time index")
    for frame, t, row in zip(frames, times.tolist(), values.tolist(), strict=True):
        out.append(f"{frame}\t{_format(t)}\t" + "\t".join(map(_format, row)))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------- STO/MOT

def read_sto(path) -> pd.DataFrame:
    """A table from an OpenSim .sto or .mot file (both versions of the header), unconverted.

    Returns a frame indexed by `time` (s) with the file's column labels (stripped of padding).
    `df.attrs`: `in_degrees` (bool, from `inDegrees=`; False where absent, as OpenSim assumes),
    `name` (the header's first free-text line, or `name <x>` of the old format; the file stem if
    there is none), `header` (every other `key=value` or old `key value` line, values as text),
    `source`.
    """
    path = Path(path)
    lines = _read_lines(path)
    end = next((i for i, line in enumerate(lines) if line.strip().lower() == "endheader"), None)
    if end is None:
        raise IngestError("no 'endheader' line: not an OpenSim .sto/.mot file", file=path,
                          hint="the header must end with a line reading 'endheader'")
    name, header = None, {}
    for line in lines[:end]:
        text = line.strip()
        if not text:
            continue
        if "=" in text:
            key, _, value = text.partition("=")
            header[key.strip()] = value.strip()
        elif _OLD_HEADER.match(text):
            key, _, value = text.partition(" ")
            if key == "name" and name is None:
                name = value.strip()
            else:
                header[key] = value.strip()
        elif name is None:
            name = text
    in_degrees = header.pop("inDegrees", "no").strip().lower() in ("yes", "true", "1")

    rows = _data_lines(lines, end + 1)
    if not rows:
        raise IngestError("no column labels after 'endheader'", file=path)
    _, label_line = rows.pop(0)
    sep = "\t" if "\t" in label_line else None  # pre-4.0 files may use spaces
    labels = [f.strip() for f in label_line.split(sep)]
    while labels and not labels[-1]:
        labels.pop()  # blank trailing columns
    if not labels or labels[0].lower() != "time":
        raise IngestError(f"the first column must be 'time', found {labels[:1]}", file=path)
    if "" in labels:
        raise IngestError(f"blank column label at column {labels.index('') + 1}", file=path)
    if len(set(labels)) != len(labels):
        dupes = sorted({x for x in labels if labels.count(x) > 1})
        raise IngestError(f"duplicate column labels {dupes}", file=path)
    data = _parse_rows(rows, len(labels), sep, path) if rows else np.empty((0, len(labels)))
    df = pd.DataFrame(data[:, 1:], index=_time_index(data[:, 0], path), columns=labels[1:])
    df.attrs = {"in_degrees": in_degrees, "name": name if name is not None else path.stem,
                "header": header, "source": str(path)}
    return df


read_mot = read_sto


def write_sto(path, df: pd.DataFrame, *, in_degrees: bool | None = None,
              name: str | None = None) -> None:
    """Write a table as an OpenSim version-1 .sto/.mot file (TimeSeriesTable and Storage read it).

    df: index time (s), one column per label. in_degrees: written as `inDegrees=yes/no`; defaults
    to df.attrs["in_degrees"], else False. Values are written as they are: passing a value that
    contradicts df.attrs["in_degrees"] is an error (convert with `to_radians` or fix the attrs).
    name: the first header line; defaults to df.attrs["name"], else the file stem. Other
    `key=value` pairs of df.attrs["header"] are written too (DataRate, DataType, ...).
    """
    path = Path(path)
    attrs = df.attrs
    if in_degrees is None:
        in_degrees = bool(attrs.get("in_degrees", False))
    elif "in_degrees" in attrs and bool(attrs["in_degrees"]) != bool(in_degrees):
        raise ValueError(f"in_degrees={in_degrees} contradicts df.attrs['in_degrees']="
                         f"{attrs['in_degrees']}; convert with to_radians() or update the attrs")
    labels = [str(c) for c in df.columns]
    bad = [c for c in labels if not c or c.strip() != c or any(ch in c for ch in "\t\n\r")]
    if bad or "time" in (c.lower() for c in labels):
        raise ValueError(f"column labels must be non-empty, without tabs, newlines or padding, "
                         f"and not 'time': {bad or 'time'}")
    name = name or attrs.get("name") or path.stem
    out = [name.splitlines()[0], "version=1", f"nRows={len(df)}", f"nColumns={len(labels) + 1}",
           f"inDegrees={'yes' if in_degrees else 'no'}"]
    for key, value in (attrs.get("header") or {}).items():
        key, value = str(key), str(value)
        if key.lower() not in _STO_COMPUTED_KEYS and "=" not in key and "\n" not in key + value:
            out.append(f"{key}={value}")
    out += ["endheader", "\t".join(["time", *labels])]
    times = np.asarray(df.index, dtype=np.float64)
    values = df.to_numpy(dtype=np.float64)
    _check_no_infinity(values, "write_sto: the table")
    _check_no_infinity(times, "write_sto: the time index")
    for t, row in zip(times.tolist(), values.tolist(), strict=True):
        out.append("\t".join([_format(t), *map(_format, row)]))
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


write_mot = write_sto


# ------------------------------------------------------------------------- labels and units

def state_column_name(label: str) -> str:
    """Our column name for an OpenSim state or output path; other labels pass through.

    `/jointset/hip_r/hip_flexion_r/value` -> `hip_flexion_r`,
    `/jointset/hip_r/hip_flexion_r/speed` -> `hip_flexion_r_speed`,
    `/forceset/soleus_r/activation` -> `soleus_r_activation`,
    `/forceset/reserve_hip_flexion_r` (a control) -> `reserve_hip_flexion_r`.
    """
    if not label.startswith("/"):
        return label
    parts = [p for p in label.split("/") if p]
    if len(parts) >= 3:  # component path + state variable
        owner, variable = parts[-2], parts[-1]
        return owner if variable == "value" else f"{owner}_{variable}"
    return parts[-1] if parts else label


def rename_state_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of `df` with state-path labels renamed by `state_column_name` (attrs kept)."""
    new = [state_column_name(str(c)) for c in df.columns]
    if len(set(new)) != len(new):
        dupes = sorted({n for n in new if new.count(n) > 1})
        raise IngestError(f"state labels collide after renaming: {dupes}",
                          file=df.attrs.get("source"))
    out = df.set_axis(new, axis=1)
    out.attrs = dict(df.attrs)
    return out


def is_translational(column: str) -> bool:
    """True for translational coordinates and their derivatives (`pelvis_tx`, `knee_r_ty_speed`),
    by OpenSim's naming convention; a model with other translation names needs explicit columns."""
    name = state_column_name(column)
    for suffix in _DERIVATIVE_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return bool(_TRANSLATION.search(name))


def to_radians(df: pd.DataFrame, coordinate_columns=None) -> pd.DataFrame:
    """Copy of a table read with `inDegrees=yes`, its rotational columns converted to radians.

    coordinate_columns: the columns to convert (e.g. the model's rotational coordinates from
    `osim/`); default: every column that `is_translational` does not flag (metres stay metres).
    A table already in radians (attrs in_degrees False) is returned as an unchanged copy.
    """
    out = df.copy()
    out.attrs = dict(df.attrs)
    if not df.attrs.get("in_degrees", False):
        return out
    if coordinate_columns is None:
        coordinate_columns = [c for c in df.columns if not is_translational(str(c))]
    missing = [c for c in coordinate_columns if c not in df.columns]
    if missing:
        raise KeyError(f"to_radians: columns not in the table: {missing}")
    cols = list(coordinate_columns)
    out[cols] = np.deg2rad(df[cols].to_numpy(dtype=np.float64))
    out.attrs["in_degrees"] = False
    return out
