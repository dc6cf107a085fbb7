"""SMPL sequences (AMASS-style .npz) to virtual markers on bony landmarks, as a Trial.

A sequence's pose and shape run through `smplx.SMPL` to the body mesh; each virtual marker is one
mesh vertex (`pipeline/data/smpl_markers.json`, or a lab's own map). Official SMPL pickles hold
chumpy arrays, and chumpy does not import on Python 3.11 with NumPy 2 (DESIGN.md trap 8), so
`load_smpl_model_data` unpickles them with a class map that turns those objects into NumPy arrays.

`smplx` and `torch` are imported inside the functions that need them: `import pipeline` stays light.
See docs/smpl.md for what a lab needs (the model file, the marker map, frames and units).
"""
from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import IngestError
from .trial import Trial, marker_columns

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand")
MODEL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")
DEFAULT_MARKER_MAP = Path(__file__).with_name("data") / "smpl_markers.json"
MODEL_ENV = "SMPL_MODEL_PATH"
MODEL_HINT = (f"register at https://smpl.is.tue.mpg.de, download the SMPL model (.pkl; licence "
              f"forbids redistribution, so the project cannot ship it) and pass model_path= or set "
              f"{MODEL_ENV} to the .pkl file or to the folder holding SMPL_NEUTRAL.pkl")

# Positions p_opensim = R @ p_source. AMASS worlds are Z up: rotating -90 degrees about X takes
# (x, y, z) to (x, z, -y), so source Z becomes OpenSim's Y. Heading is kept as recorded.
UP_AXIS_TO_OPENSIM = {
    "z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),
    "y": np.eye(3),
}

# --- Official SMPL pickles without chumpy -------------------------------------------------------

_SAFE_BUILTINS = {"object", "set", "frozenset", "dict", "list", "tuple", "complex", "slice",
                  "bytearray", "bytes", "str", "int", "float", "bool"}
_SAFE_NUMPY = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}


class _ChumpyStub:
    """Stands in for any chumpy class while unpickling; keeps the pickled state."""

    def __setstate__(self, state):
        self.state = state[0] if isinstance(state, tuple) else state


class _SparseStub:
    """Stands in for a scipy.sparse matrix while unpickling; `fmt` is csc, csr or coo."""

    fmt = ""

    def __setstate__(self, state):
        self.state = state[0] if isinstance(state, tuple) else state


class _SmplUnpickler(pickle.Unpickler):
    """Resolves only the classes an SMPL pickle needs; chumpy and scipy.sparse become stubs."""

    def find_class(self, module, name):
        root = module.split(".")[0]
        if root == "chumpy":
            return _ChumpyStub
        if module.startswith("scipy.sparse"):
            return type(name, (_SparseStub,), {"fmt": name[:3]})
        if root == "numpy" and name in _SAFE_NUMPY:
            if module.startswith("numpy.core"):  # NumPy 1 pickles, read under NumPy 2
                module = "numpy._core" + module[len("numpy.core"):]
            return super().find_class(module, name)
        if (module in ("copy_reg", "copyreg") and name == "_reconstructor") or \
                (module == "_codecs" and name == "encode") or \
                (module in ("__builtin__", "builtins") and name in _SAFE_BUILTINS):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"unexpected class {module}.{name} in an SMPL model pickle")


def _dense(value, key: str, path: Path) -> np.ndarray | object:
    """A stub (chumpy array, sparse matrix) as a NumPy array; anything else unchanged."""
    if isinstance(value, _ChumpyStub):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise IngestError(f"model key {key!r} is a chumpy expression, not a stored array",
                              file=path, hint="use the official SMPL .pkl, or re-save it as .npz")
        return np.asarray(_dense(state["x"], key, path))
    if isinstance(value, _SparseStub):
        s = value.state
        shape = tuple(s.get("_shape", s.get("shape", ())))
        out = np.zeros(shape)
        if value.fmt in ("csc", "csr") and len(shape) == 2:
            data, idx, ptr = (np.asarray(s[k]) for k in ("data", "indices", "indptr"))
            major = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
            rows, cols = (idx, major) if value.fmt == "csc" else (major, idx)
        elif value.fmt == "coo" and len(shape) == 2:
            data = np.asarray(s["data"])
            rows, cols = s["coords"] if "coords" in s else (s["row"], s["col"])
        else:
            raise IngestError(f"model key {key!r} is a sparse {value.fmt!r} matrix this reader "
                              "does not know", file=path)
        np.add.at(out, (np.asarray(rows), np.asarray(cols)), data)
        return out
    return value


def load_smpl_model_data(path: str | Path) -> dict:
    """The arrays of an SMPL model file (official .pkl, chumpy inside or not, or .npz).

    Returns a dict with at least MODEL_KEYS as NumPy arrays (metres for vertices); chumpy never
    needs to be importable. Raises IngestError naming the file and the missing or bad key.
    """
    path = Path(path)
    if not path.is_file():
        raise IngestError("SMPL model file not found", file=path, hint=MODEL_HINT)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                raw = {k: npz[k] for k in npz.files}
        else:
            with open(path, "rb") as fh:
                raw = _SmplUnpickler(fh, encoding="latin1").load()
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one ingest failure
        raise IngestError(f"not a readable SMPL model file ({exc})", file=path,
                          hint=MODEL_HINT) from exc
    if not isinstance(raw, dict):
        raise IngestError("SMPL model file holds no dict of arrays", file=path, hint=MODEL_HINT)
    data = {key: _dense(value, key, path) for key, value in raw.items()}
    missing = [key for key in MODEL_KEYS if key not in data]
    if missing:
        raise IngestError(f"SMPL model file lacks key(s) {missing}", file=path,
                          hint="point at an SMPL body model (.pkl from smpl.is.tue.mpg.de), "
                               "not SMPL-X, MANO or a fitted result")
    for key in MODEL_KEYS:
        data[key] = np.asarray(data[key])
    n_v, n_j = data["v_template"].shape[0], len(SMPL_JOINT_NAMES)
    expected = {"v_template": (n_v, 3), "weights": (n_v, n_j), "J_regressor": (n_j, n_v),
                "kintree_table": (2, n_j), "shapedirs": (n_v, 3, None),
                "posedirs": (n_v, 3, 9 * (n_j - 1)), "f": (None, 3)}
    for key, shape in expected.items():
        got = data[key].shape
        if len(got) != len(shape) or any(e is not None and g != e
                                         for g, e in zip(got, shape, strict=False)):
            want = "x".join("N" if e is None else str(e) for e in shape)
            raise IngestError(f"SMPL model key {key!r} has shape {got}, expected {want} "
                              f"(a 24-joint SMPL body model)", file=path, hint=MODEL_HINT)
    data["f"] = data["f"].astype(np.int64)
    data["kintree_table"] = data["kintree_table"].astype(np.int64)
    return data


def resolve_smpl_model_path(model_path: str | Path | None = None, gender: str = "neutral") -> Path:
    """The model file to use: `model_path`, else $SMPL_MODEL_PATH; a folder is searched for
    `SMPL_<GENDER>.pkl` (smplx's naming), then the official `basicmodel_<g>_lbs_*.pkl`."""
    given = model_path or os.environ.get(MODEL_ENV)
    if not given:
        raise IngestError("no SMPL model given", hint=MODEL_HINT)
    path = Path(given).expanduser()
    if not path.is_dir():
        return path
    gender = (gender or "neutral").lower()
    tag = {"male": "m", "female": "f"}.get(gender, "neutral")
    smplx_name = f"SMPL_{gender.upper()}.pkl"
    for candidate in (path / smplx_name, path / "smpl" / smplx_name):
        if candidate.is_file():
            return candidate
    official = sorted(p for p in path.glob("*.pkl")
                      if p.name.lower().startswith(f"basicmodel_{tag}_"))
    if official:
        return official[-1]  # the latest version sorts last (v1.1.0 after v1.0.0)
    raise IngestError(f"no SMPL model for gender {gender!r} in this folder", file=path,
                      hint=MODEL_HINT)


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, mtime_ns: int):
    import smplx  # lazy: smplx pulls in torch
    import torch
    from smplx.utils import Struct

    data = load_smpl_model_data(path)
    # smplx prints a warning for every model with fewer than 300 shape components: noise here.
    with contextlib.redirect_stdout(io.StringIO()):
        model = smplx.SMPL(model_path=path, data_struct=Struct(**data), dtype=torch.float64,
                           num_betas=data["shapedirs"].shape[-1])
    return model.eval()


def build_smpl_model(model_path: str | Path | None = None, gender: str = "neutral"):
    """An `smplx.SMPL` (float64) from a lab's model file; cached per file and modification time."""
    path = resolve_smpl_model_path(model_path, gender).resolve()
    if not path.is_file():
        raise IngestError("SMPL model file not found", file=path, hint=MODEL_HINT)
    return _cached_model(str(path), path.stat().st_mtime_ns)


# --- Marker map ---------------------------------------------------------------------------------

def load_marker_map(marker_map: str | Path | dict | None = None) -> dict[str, dict]:
    """Marker name -> {"vertex": int, "joint": SMPL joint name, ...}, in file order.

    `marker_map`: None for the built-in map, a path to a JSON file of the same form, or a dict
    (entries may also be bare vertex indices). Raises IngestError on a malformed entry.
    """
    source = DEFAULT_MARKER_MAP if marker_map is None else marker_map
    path = None
    if isinstance(source, (str, Path)):
        path = Path(source)
        try:
            source = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise IngestError(f"cannot read the SMPL marker map ({exc})", file=path) from exc
    if not isinstance(source, dict) or not source:
        raise IngestError("SMPL marker map must be a non-empty {marker: entry} object", file=path)
    out = {}
    for name, entry in source.items():
        entry = {"vertex": entry} if isinstance(entry, (int, np.integer)) else dict(entry)
        vertex = entry.get("vertex")
        if isinstance(vertex, bool) or not isinstance(vertex, (int, np.integer)) or vertex < 0:
            raise IngestError(f"marker {name!r}: 'vertex' must be a mesh vertex index, got "
                              f"{vertex!r}", file=path)
        joint = entry.get("joint")
        if joint is not None and joint not in SMPL_JOINT_NAMES:
            raise IngestError(f"marker {name!r}: unknown SMPL joint {joint!r}", file=path,
                              hint=f"use one of {', '.join(SMPL_JOINT_NAMES)}")
        entry["vertex"] = int(vertex)
        out[str(name)] = entry
    return out


# --- Sequences to markers -----------------------------------------------------------------------

def smpl_virtual_markers(model, poses, betas, trans, marker_map, chunk: int = 512) -> np.ndarray:
    """Virtual marker positions (T, M, 3) in metres, in the sequence's own frame.

    model: an `smplx.SMPL`; poses: (T, >=72) axis-angle (rad), global orientation then 23 body
    joints (SMPL-H/X extras beyond 72 are ignored); betas: (B,) shape coefficients, cut or
    zero-padded to the model's count; trans: (T, 3) root translation (m); marker_map: as returned
    by `load_marker_map`, markers in its order.
    """
    import torch  # lazy: see module docstring

    poses = np.asarray(poses, dtype=float)
    trans = np.asarray(trans, dtype=float)
    betas = np.asarray(betas, dtype=float).reshape(-1)
    if poses.ndim != 2 or poses.shape[1] < 72 or trans.shape != (len(poses), 3):
        raise ValueError(f"poses (T, >=72) and trans (T, 3) expected, got {poses.shape} and "
                         f"{trans.shape}")
    n_betas = model.num_betas
    betas = np.concatenate([betas[:n_betas], np.zeros(max(0, n_betas - len(betas)))])
    vertex_ids = [entry["vertex"] for entry in marker_map.values()]
    n_verts = model.get_num_verts()
    bad = [name for name, e in marker_map.items() if e["vertex"] >= n_verts]
    if bad:
        raise IngestError(f"marker vertices beyond the model's {n_verts} vertices: {bad}")
    dtype = model.v_template.dtype
    ids = torch.as_tensor(vertex_ids, dtype=torch.long)
    beta_row = torch.as_tensor(betas, dtype=dtype)[None]
    out = np.empty((len(poses), len(vertex_ids), 3))
    with torch.no_grad():
        for start in range(0, len(poses), chunk):
            pose = torch.as_tensor(poses[start:start + chunk, :72], dtype=dtype)  # (n, 72)
            n = len(pose)
            result = model(betas=beta_row.expand(n, -1), global_orient=pose[:, :3],
                           body_pose=pose[:, 3:], transl=torch.as_tensor(
                               trans[start:start + n], dtype=dtype), return_verts=True)
            out[start:start + n] = result.vertices[:, ids].numpy()  # (n, M, 3)
    return out


def read_smpl_sequence(path: str | Path) -> dict:
    """An AMASS-style .npz as {"poses" (T, 72), "betas" (B,), "trans" (T, 3), "rate_hz",
    "gender"}; IngestError naming the file and the problem for missing keys or bad shapes."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            raw = {k: npz[k] for k in npz.files if k in
                   ("poses", "betas", "trans", "mocap_framerate", "mocap_frame_rate", "gender")}
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one ingest failure
        raise IngestError(f"not a readable .npz SMPL sequence ({exc})", file=path) from exc
    if "mocap_framerate" not in raw and "mocap_frame_rate" in raw:  # AMASS SMPL-X spelling
        raw["mocap_framerate"] = raw["mocap_frame_rate"]
    missing = [k for k in ("poses", "betas", "trans", "mocap_framerate") if k not in raw]
    if missing:
        raise IngestError(f"SMPL sequence lacks key(s) {missing}", file=path,
                          hint="expected AMASS keys poses, betas, trans, mocap_framerate")
    poses, trans, betas = raw["poses"], raw["trans"], np.squeeze(raw["betas"])
    if poses.ndim != 2 or poses.shape[1] < 72 or len(poses) == 0:
        raise IngestError(f"'poses' has shape {poses.shape}, expected (frames, >=72) axis-angle",
                          file=path)
    if trans.shape != (len(poses), 3):
        raise IngestError(f"'trans' has shape {trans.shape}, expected ({len(poses)}, 3)", file=path)
    if betas.ndim != 1 or len(betas) < 10:
        raise IngestError(f"'betas' has shape {raw['betas'].shape}, expected (>=10,)", file=path)
    rate = raw["mocap_framerate"]
    if rate.size != 1 or not np.isfinite(rate).all() or float(rate.reshape(-1)[0]) <= 0:
        raise IngestError(f"'mocap_framerate' must be one positive number, got {rate!r}", file=path)
    arrays = {"poses": poses[:, :72], "betas": betas, "trans": trans}
    for key, value in arrays.items():
        if not np.issubdtype(value.dtype, np.number) or not np.isfinite(value).all():
            raise IngestError(f"'{key}' holds non-numeric or non-finite values", file=path)
    gender = raw["gender"].reshape(-1)[0] if raw.get("gender") is not None and \
        raw["gender"].size == 1 else None
    if isinstance(gender, bytes):
        gender = gender.decode("latin1")
    return {**{k: v.astype(float) for k, v in arrays.items()},
            "rate_hz": float(rate.reshape(-1)[0]),
            "gender": str(gender) if gender is not None else None}


def to_opensim_frame(points: np.ndarray, up_axis: str = "z") -> np.ndarray:
    """Points (..., 3) in a source frame with `up_axis` up ("z": AMASS; "y": SMPL's own) rotated
    into OpenSim's Y-up frame; metres unchanged."""
    if up_axis not in UP_AXIS_TO_OPENSIM:
        raise ValueError(f"up_axis must be one of {sorted(UP_AXIS_TO_OPENSIM)}, got {up_axis!r}")
    return points @ UP_AXIS_TO_OPENSIM[up_axis].T


def load_smpl_trial(path: str | Path, subject: str, model_path: str | Path | None = None,
                    marker_map: str | Path | dict | None = None, up_axis: str = "z",
                    gender: str | None = None, name: str | None = None) -> Trial:
    """A Trial of virtual markers (m, OpenSim frame, time index in s) from an AMASS-style .npz.

    model_path: the lab's SMPL model file or folder (else $SMPL_MODEL_PATH); gender picks the
    file in a folder (default: the sequence's own `gender`, else neutral); marker_map: see
    `load_marker_map`; up_axis: the sequence's up axis ("z" for AMASS).
    """
    path = Path(path)
    name = name or path.stem
    if up_axis not in UP_AXIS_TO_OPENSIM:
        raise IngestError(f"unknown up_axis {up_axis!r}", file=path, trial=name,
                          hint=f"use one of {sorted(UP_AXIS_TO_OPENSIM)}")
    seq = read_smpl_sequence(path)
    markers_map = load_marker_map(marker_map)
    gender = gender or seq["gender"] or "neutral"
    try:
        model = build_smpl_model(model_path, gender)
        positions = smpl_virtual_markers(model, seq["poses"], seq["betas"], seq["trans"],
                                         markers_map)
    except IngestError as exc:  # the same failure, now naming the trial
        raise IngestError(exc.problem, file=exc.file or path, trial=name, hint=exc.hint) from exc
    positions = to_opensim_frame(positions, up_axis)  # (T, M, 3)
    names = list(markers_map)
    times = pd.Index(np.arange(len(positions)) / seq["rate_hz"], name="time")
    frame = pd.DataFrame(positions.reshape(len(positions), -1), index=times,
                         columns=marker_columns(names))
    meta = {"format": "smpl_npz", "rate_hz": seq["rate_hz"], "up_axis": up_axis,
            "gender": gender, "smpl_model": str(resolve_smpl_model_path(model_path, gender)),
            "marker_map": str(marker_map) if isinstance(marker_map, (str, Path)) else
            ("built-in" if marker_map is None else "custom")}
    return Trial(subject=subject, name=name, markers=frame, source=path, meta=meta)
