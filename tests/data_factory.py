"""Raw lab folders for reliability tests: one good synthetic subject whose motion trial is quiet
standing (a copy of its static trial, solved by Moco in well under a minute with the settings of
`tiny_config`), and a corpus of bad inputs, one kind per trial or per subject folder.

`write_bad_corpus` returns what each bad input is expected to become: one failures row, keyed
(subject, trial, stage), with a file name it must mention.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from conftest import WELD

GOOD = "S01"
REPO = Path(__file__).resolve().parents[1]


def luigi_command(root: Path, *args: str) -> tuple[list[str], dict]:
    """(argv, env) of `luigi --module tasks ...` as a lab runs it, with the lab's luigi.cfg."""
    env = {**os.environ, "LUIGI_CONFIG_PATH": str(root / "luigi.cfg")}
    return [sys.executable, "-m", "luigi", "--module", "tasks", *args], env


def run_luigi(root: Path, *args: str, env: dict | None = None,
              timeout: float = 900) -> subprocess.CompletedProcess:
    argv, base = luigi_command(root, *args)
    return subprocess.run(argv, cwd=root, env={**base, **(env or {})}, capture_output=True,
                          text=True, timeout=timeout)


def run_warehouse(root: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m warehouse ...` on the lab's warehouse and artifacts."""
    return subprocess.run([sys.executable, "-m", "warehouse", *args, "--warehouse",
                           str(root / "warehouse"), "--artifacts", str(root / "artifacts")]
                          if args[0] == "check" else
                          [sys.executable, "-m", "warehouse", *args, "--warehouse",
                           str(root / "warehouse")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)


def good_subject(raw: Path, name: str = GOOD, trials=("stand_01",), seed: int = 3) -> Path:
    """A synthetic subject folder (subject.json, static.c3d) whose motion trials are copies of
    the static trial: standing still, the cheapest thing Moco can track."""
    from pipeline.cohort import sample_subjects, write_subject

    subject = dict(sample_subjects(1, seed=seed)[0], id=name)
    write_subject(raw, subject, seed=seed, activities=[])
    folder = raw / name
    for trial in trials:
        shutil.copy(folder / "static.c3d", folder / f"{trial}.c3d")
    return folder


def tiny_config(root: Path, *, extra: str = "") -> Path:
    """luigi.cfg for the lab under `root` (raw/, warehouse/, artifacts/): coarse mesh, arms and
    toes welded, and exit codes that say what happened (Luigi's default is 0 for everything)."""
    path = root / "luigi.cfg"
    path.write_text(f"""
[core]
autoload_range = false

[paths]
raw = {root / 'raw'}
warehouse = {root / 'warehouse'}
artifacts = {root / 'artifacts'}

[TrackMoco]
mesh_interval = 0.25
weld_joints = {json.dumps(WELD)}

[retcode]
already_running = 10
missing_data = 20
not_run = 25
task_failed = 30
scheduling_error = 35
unhandled_exception = 40
{extra}
""")
    return path


def static_markers(folder: Path) -> tuple[list[str], np.ndarray, float]:
    """(names, positions (frames, markers, 3) in the lab frame in metres, rate Hz) of a subject's
    static C3D."""
    from pipeline.c3d import read_c3d
    from pipeline.trial import marker_names

    rec = read_c3d(folder / "static.c3d")
    names = marker_names(rec.markers.columns)
    return names, rec.markers.to_numpy().reshape(len(rec.markers), -1, 3), rec.point_rate


def write_markers_c3d(path: Path, names: list[str], lab_m: np.ndarray, rate_hz: float, *,
                      units: str = "mm", scale: float = 1e3) -> Path:
    """A C3D of marker trajectories (lab frame): values `lab_m * scale` labelled `units`."""
    from pipeline.c3d import write_points_c3d

    return write_points_c3d(path, names, lab_m * scale, rate_hz, units)


def write_trc_with_grf(folder: Path, trial: str, names, lab_m: np.ndarray, rate_hz: float,
                       grf_start_s: float) -> None:
    """`<trial>.trc` (m) and `<trial>_grf.mot` with one foot's plate: body weight on the right
    foot, its time base starting at `grf_start_s`."""
    from pipeline.opensim_files import write_sto, write_trc
    from pipeline.trial import marker_columns

    times = np.arange(len(lab_m)) / rate_hz
    markers = pd.DataFrame(lab_m.reshape(len(lab_m), -1), columns=marker_columns(names),
                           index=pd.Index(times, name="time"))
    write_trc(folder / f"{trial}.trc", markers, units="m", data_rate=rate_hz)
    grf_times = grf_start_s + np.arange(len(lab_m) * 10) / (rate_hz * 10)
    grf = pd.DataFrame(0.0, index=pd.Index(grf_times, name="time"), columns=[
        f"ground_force_r_{k}" for k in ("vx", "vy", "vz", "px", "py", "pz")])
    grf["ground_force_r_vz"] = 700.0  # the lab's Z is up, as in the TRC
    write_sto(folder / f"{trial}_grf.mot", grf, in_degrees=False, name=f"{trial}_grf")


@dataclass(frozen=True)
class Expected:
    """The failures row a bad input must become, and words its file column must contain."""

    kind: str
    subject: str
    trial: str
    stage: str
    file_mentions: str


def write_bad_corpus(raw: Path, good: Path) -> list[Expected]:
    """Bad trials beside the good subject's, and bad subject folders; returns the expectations.

    `good` is the good subject's folder: its static trial is the raw material of every bad copy.
    """
    names, lab, rate = static_markers(good)
    static = (good / "static.c3d").read_bytes()
    s = good.name
    out: list[Expected] = []

    def trial_file(kind: str, name: str, data: bytes, stage: str = "ingest") -> None:
        (good / name).write_bytes(data)
        out.append(Expected(kind, s, Path(name).stem, stage, name))

    trial_file("empty file", "empty_01.c3d", b"")
    trial_file("truncated C3D", "truncated_01.c3d", static[: len(static) * 2 // 3])
    corrupt = bytearray(static)
    corrupt[516:900] = bytes((i * 37 + 11) % 256 for i in range(384))  # scribbled parameters
    trial_file("corrupt C3D", "corrupt_01.c3d", bytes(corrupt))
    trial_file("not a C3D at all", "notes_01.c3d", "Trial notes: subject felt fine.\n".encode()
               * 40)

    def c3d(kind: str, trial: str, positions, stage: str = "ingest", **kw) -> None:
        write_markers_c3d(good / f"{trial}.c3d", kw.pop("names", names), positions, rate, **kw)
        out.append(Expected(kind, s, trial, stage, f"{trial}.c3d"))

    c3d("all-NaN markers", "nan_01", np.full_like(lab, np.nan))
    few = [names.index(n) for n in names[:3]]
    c3d("markers the model needs are missing", "few_markers_01", lab[:, few], stage="model",
        names=[names[i] for i in few])
    c3d("unknown units", "units_unknown_01", lab, units="furlong")
    c3d("missing units", "units_missing_01", lab, units="")
    c3d("wrong units (mm labelled m)", "units_wrong_01", lab, units="m", scale=1e3)

    write_trc_with_grf(good, "grf_mismatch_01", names, lab, rate, grf_start_s=30.0)
    out.append(Expected("force plates inconsistent with markers", s, "grf_mismatch_01",
                        "ingest", "grf_mismatch_01_grf.mot"))

    frames = 30
    np.savez(good / "smpl_shapes_01.npz", poses=np.zeros((frames, 10)),
             trans=np.zeros((frames, 3)), betas=np.zeros(10), mocap_framerate=60.0)
    out.append(Expected("SMPL file with wrong shapes", s, "smpl_shapes_01", "ingest",
                        "smpl_shapes_01.npz"))

    shutil.copy(good / "static.c3d", good / "dup_01.c3d")
    write_trc_with_grf(good, "dup_01", names, lab, rate, grf_start_s=0.0)
    out.append(Expected("duplicate trial names", s, "dup_01", "ingest", "dup_01"))

    # Subject folders that cannot be used at all: one row each, for the subject.
    info = json.loads((good / "subject.json").read_text())

    def subject(kind: str, name: str, info_text: str | None, stage: str = "model",
                trial: str = "*", static_file: bool = True, mentions: str = "subject.json"):
        folder = raw / name
        folder.mkdir()
        if info_text is not None:
            (folder / "subject.json").write_text(info_text, encoding="utf-8")
        if static_file:
            shutil.copy(good / "static.c3d", folder / "static.c3d")
        shutil.copy(good / "static.c3d", folder / "stand_01.c3d")
        out.append(Expected(kind, name, trial, stage, mentions))
        return folder

    subject("subject.json missing", "S_no_json", None)
    subject("subject.json not JSON", "S_bad_json", '{"mass_kg": 72, "height_m": 1.8,')
    subject("absurd mass", "S_mass", json.dumps({**info, "mass_kg": 720.0}))
    subject("height in cm", "S_height", json.dumps({**info, "height_m": 178}))
    subject("static trial missing", "S_no_static", json.dumps(info), stage="ingest",
            trial="static", static_file=False, mentions="S_no_static")
    broken = subject("lab model fails to load", "S_bad_model", json.dumps(
        {**info, "static_trial": None, "model": "lab_model.osim"}), static_file=False,
        mentions="lab_model.osim")
    (broken / "lab_model.osim").write_text('<?xml version="1.0"?>\n<OpenSimDocument '
                                           'Version="40000"><Model name="x"><BodySet><objects>'
                                           '<Body name="pelvis"><mass>oops</mass>')
    return out
