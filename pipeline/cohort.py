"""The built-in synthetic cohort: subjects, their trials as C3D files, laid out like lab data.

    <raw>/<subject>/subject.json          {"mass_kg", "height_m", "sex", "static_trial"}
    <raw>/<subject>/<trial>.c3d          markers, mm, lab frame Z up (see `write_c3d`)
    <raw>/<subject>/_truth/<trial>.sto   the coordinates that generated the markers (rad, m)
    <raw>/<subject>/_truth/<trial>_contact.sto   foot-contact plan (pipeline.motions codes)

Names starting with `_` are ignored by ingest (pipeline.raw), so the truth never enters the
pipeline as a trial. Subjects are sampled from adult anthropometry (NHANES 2015-2018 stature by
sex, Fryar et al. 2021; body-mass index of a healthy lab cohort), each with a static trial and
the activities of `ACTIVITIES`. The motions are plain NumPy (pipeline.motions); the forward
kinematics that places the feet and the markers needs OpenSim and the built-in model, so
`write_subject` imports `osim` lazily -- the only place in `pipeline/` that reaches OpenSim.

    python -m pipeline.cohort --out data/raw --subjects 3 --seed 0
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import motions
from pipeline.c3d import write_points_c3d
from pipeline.errors import PipelineError
from pipeline.opensim_files import write_sto

# Stature (m) by sex: about the mean and SD of US adults aged 20-39 in NHANES 2015-2018
# (Fryar et al. 2021, Vital Health Stat 3(46); rounded, not copied from a table), truncated
# at +-2 SD.
STATURE_M = {"F": (1.631, 0.069), "M": (1.762, 0.075)}
# Body-mass index (kg/m^2) of a lab cohort of healthy adults: mean 24, SD 3, truncated at +-2 SD
# (narrower than the population's, whose mean is ~29).
BMI = (24.0, 3.0)
TRUNCATE_SD = 2.0
RATE_HZ = 100.0
STATIC_TRIAL = "static"

MARKER_NOISE_MM = 2.0                 # white noise per axis, like a passive optical system
GAPS_PER_TRIAL = (2, 5)               # dropout gaps per trial (min, max inclusive)
GAP_FRAMES = (5, 25)                  # length of one gap, frames
MONOCULAR_DEPTH_MM = 30.0             # slow error along the camera axis (monocular video)
MONOCULAR_JITTER_MM = 6.0             # frame-to-frame jitter of a video keypoint detector


def _activity_builders():
    """Trial name -> builder(subject dict, rng) -> Motion, for every activity of the cohort."""
    def walk(speed, strides=1.0):
        return lambda s, rng: motions.walking(
            speed, s["height_m"], strides=strides, rate_hz=RATE_HZ,
            style={"amplitude": float(rng.normal(1.0, 0.04))})

    def squat(duration_s=2.6, depth=(0.8, 1.0)):
        return lambda s, rng: motions.squat(depth=float(rng.uniform(*depth)),
                                            duration_s=duration_s, rate_hz=RATE_HZ)
    return {
        "walk_slow_01": walk(1.0),
        "walk_fast_01": walk(1.4),
        "squat_01": squat(),
        "sit_to_stand_01": lambda s, rng: motions.sit_to_stand(rate_hz=RATE_HZ),
        # Short trials, one Moco window each: what `make run` tracks by default, since a
        # torque-driven MocoTrack window costs minutes per second of motion on this machine.
        "walk_short_01": walk(1.2),
        "squat_short_01": squat(duration_s=1.4, depth=(0.6, 0.8)),
    }


ACTIVITIES = tuple(_activity_builders())


def _truncated_normal(rng, mean: float, sd: float) -> float:
    while True:
        value = rng.normal(mean, sd)
        if abs(value - mean) <= TRUNCATE_SD * sd:
            return float(value)


def sample_subjects(n_subjects: int, seed: int = 0) -> list[dict]:
    """Subjects S01, S02, ...: alternating sex F, M; stature (m) and mass (kg) sampled per sex.

    The same (n, seed) gives the same subjects, and the first k of n subjects are the same for
    any n >= k (each subject has its own random stream), so a cohort can grow in place.
    """
    if n_subjects < 1:
        raise ValueError(f"n_subjects must be at least 1, got {n_subjects}")
    subjects = []
    for i in range(n_subjects):
        rng = np.random.default_rng([seed, i])
        sex = "FM"[i % 2]
        height = _truncated_normal(rng, *STATURE_M[sex])
        mass = _truncated_normal(rng, *BMI) * height**2
        subjects.append({"id": f"S{i + 1:02d}", "sex": sex, "height_m": round(height, 3),
                         "mass_kg": round(mass, 1)})
    return subjects


def degrade_markers(positions: np.ndarray, rng, *, noise_mm: float = MARKER_NOISE_MM,
                    gaps: bool = True, monocular: bool = False,
                    camera_yaw_deg: float = 30.0) -> np.ndarray:
    """Measured markers from true ones: positions (frames, markers, 3), m, OpenSim frame.

    Adds white noise (noise_mm per axis), NaN gaps (a few markers, 5-25 frames each) and, with
    `monocular`, the errors of a single camera: a slowly varying depth error along the camera's
    viewing axis (horizontal, `camera_yaw_deg` from straight ahead) and keypoint jitter.
    """
    n_frames, n_markers, _ = positions.shape
    out = positions + rng.normal(0.0, noise_mm * 1e-3, positions.shape)
    if monocular:
        yaw = np.deg2rad(camera_yaw_deg)
        axis = np.array([-np.cos(yaw), 0.0, np.sin(yaw)])         # camera looks at the subject
        walk = rng.normal(0.0, 1.0, (n_frames + 40, n_markers))
        kernel = np.hanning(41) / np.hanning(41).sum()           # ~0.4 s smoothing at 100 Hz
        depth = np.stack([np.convolve(walk[:, m], kernel, mode="valid")
                          for m in range(n_markers)], axis=1)[:n_frames]
        depth *= MONOCULAR_DEPTH_MM * 1e-3 / max(depth.std(), 1e-12)
        out += depth[..., None] * axis
        out += rng.normal(0.0, MONOCULAR_JITTER_MM * 1e-3, positions.shape)
    if gaps:
        for _ in range(int(rng.integers(GAPS_PER_TRIAL[0], GAPS_PER_TRIAL[1] + 1))):
            marker = int(rng.integers(n_markers))
            length = int(rng.integers(GAP_FRAMES[0], GAP_FRAMES[1] + 1))
            start = int(rng.integers(0, max(n_frames - length, 1)))
            out[start:start + length, marker] = np.nan
    return out


def opensim_to_lab(positions: np.ndarray) -> np.ndarray:
    """OpenSim frame (X forward, Y up, Z right) to a Z-up lab frame: (x, y, z) -> (x, -z, y).

    The inverse of `pipeline.c3d.lab_to_opensim("z")`, which ingest applies on reading.
    """
    return np.stack([positions[..., 0], -positions[..., 2], positions[..., 1]], axis=-1)


def write_c3d(path, names: list[str], positions: np.ndarray, rate_hz: float) -> Path:
    """A C3D file of marker trajectories: positions (frames, markers, 3) in metres, OpenSim
    frame; written in millimetres in a Z-up lab frame, NaN as missing (residual -1)."""
    # Not c3d.write() in this process: see pipeline.c3d.write_points_c3d.
    return write_points_c3d(path, names, opensim_to_lab(positions) * 1e3, rate_hz, "mm")


def trial_motion(subject: dict, trial: str, seed: int = 0):
    """The Motion (nominal angles and contact plan) of one trial of one subject, and the random
    generator that then degrades its markers: deterministic in (seed, subject, trial)."""
    builders = _activity_builders()
    if trial != STATIC_TRIAL and trial not in builders:
        raise ValueError(f"unknown activity {trial!r}; known: {list(builders)}")
    # One stream per trial, keyed by its name, so adding activities leaves the others unchanged.
    key = [seed, int(subject["id"].lstrip("S")), *trial.encode()]
    rng = np.random.default_rng(key)
    motion = (motions.static(rate_hz=RATE_HZ, rng=rng) if trial == STATIC_TRIAL
              else builders[trial](subject, rng))
    return motion, rng


def _skipped(folder: Path) -> dict:
    """Trials the generation left out of a written subject, with why (generation.json)."""
    record = folder / "_truth" / "generation.json"
    return json.loads(record.read_text()).get("skipped", {}) if record.exists() else {}


def _subject_complete(folder: Path, activities) -> bool:
    if not (folder / "subject.json").exists():
        return False
    skipped = _skipped(folder)
    return all((folder / f"{trial}.c3d").exists() or trial in skipped
               for trial in (STATIC_TRIAL, *activities))


def write_subject(raw_dir, subject: dict, *, seed: int = 0, activities=None,
                  monocular: bool = False) -> list[Path]:
    """Generate one subject's folder under `raw_dir` (atomically: built under a `_`-prefixed
    temporary name, then renamed). Returns the written file paths."""
    # OpenSim is imported here, not at module import: pipeline/ stays free of it otherwise.
    from osim.builtin_model import build_model
    from osim.synthetic_dynamics import SOLVED_ACTIVITIES, solve_consistent
    from osim.synthetic_markers import marker_positions, plant_feet

    builders = _activity_builders()
    activities = list(ACTIVITIES if activities is None else activities)
    unknown = [a for a in activities if a not in builders]
    if unknown:
        raise ValueError(f"unknown activities {unknown}; known: {list(builders)}")
    raw_dir = Path(raw_dir)
    final = raw_dir / subject["id"]
    tmp = raw_dir / f"_tmp_{subject['id']}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "_truth").mkdir(parents=True)
    model = build_model(subject["height_m"], subject["mass_kg"], subject["sex"],
                        name=subject["id"])
    scratch = tmp / "_scratch"                 # solver folders; removed before publishing
    model_file = scratch / "model.osim"
    scratch.mkdir()
    written, skipped = [], {}
    try:
        for trial in [STATIC_TRIAL, *activities]:
            motion, rng = trial_motion(subject, trial, seed)
            coords = plant_feet(model, motion)
            plan = coords.attrs.pop("contact")
            if motion.activity in SOLVED_ACTIVITIES:
                # A stride must obey Newton to be ground truth (osim.synthetic_dynamics).
                if not model_file.exists():
                    model.printToXML(str(model_file))
                try:
                    coords, kinetics = solve_consistent(
                        model_file, coords, scratch / trial, mass_kg=subject["mass_kg"],
                        height_m=subject["height_m"], trial=f"{subject['id']}/{trial}")
                except PipelineError as err:
                    # A stride the solver cannot make consistent costs that trial, not the
                    # subject or the cohort; generation.json says which and why.
                    skipped[trial] = str(err)
                    print(f"warning: {subject['id']}/{trial} not written: {err}",
                          file=sys.stderr)
                    continue
                write_sto(tmp / "_truth" / f"{trial}_kinetics.sto", kinetics, in_degrees=False,
                          name=f"{trial}_kinetics")
                written.append(f"_truth/{trial}_kinetics.sto")
                plan = {side: p[:len(coords)] for side, p in plan.items()}
            names, positions = marker_positions(model, coords)
            measured = degrade_markers(positions, rng, monocular=monocular)
            write_c3d(tmp / f"{trial}.c3d", names, measured, RATE_HZ)
            contact = pd.DataFrame(plan, index=coords.index)
            write_sto(tmp / "_truth" / f"{trial}.sto", coords, in_degrees=False, name=trial)
            write_sto(tmp / "_truth" / f"{trial}_contact.sto",
                      contact.rename(columns=lambda side: f"contact_{side}").astype(float),
                      in_degrees=False, name=f"{trial}_contact")
            written += [f"{trial}.c3d", f"_truth/{trial}.sto", f"_truth/{trial}_contact.sto"]
        info = {"mass_kg": subject["mass_kg"], "height_m": subject["height_m"],
                "sex": subject["sex"], "static_trial": STATIC_TRIAL}
        (tmp / "subject.json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
        generation = {"seed": seed, "subject": subject, "activities": activities,
                      "monocular": monocular, "rate_hz": RATE_HZ,
                      "marker_noise_mm": MARKER_NOISE_MM, "skipped": skipped}
        (tmp / "_truth" / "generation.json").write_text(json.dumps(generation, indent=2) + "\n",
                                                       encoding="utf-8")
        written += ["subject.json", "_truth/generation.json"]
        shutil.rmtree(scratch)
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [final / name for name in written]


def write_cohort(raw_dir, n_subjects: int = 3, seed: int = 0, activities=None,
                 monocular: bool = False) -> list[Path]:
    """Write the synthetic cohort into `raw_dir` in the raw lab-data layout; return the paths
    written. Subjects whose folder is already complete are skipped (idempotent), so growing
    `n_subjects` adds only the new ones."""
    raw_dir = Path(raw_dir)
    raw_dir.mkdir(parents=True, exist_ok=True)
    activities = list(ACTIVITIES if activities is None else activities)
    written: list[Path] = []
    for subject in sample_subjects(n_subjects, seed):
        if _subject_complete(raw_dir / subject["id"], activities):
            continue
        written += write_subject(raw_dir, subject, seed=seed, activities=activities,
                                 monocular=monocular)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line options of the cohort writer (also used by `python -m pipeline synth`)."""
    parser.add_argument("--out", required=True, help="raw data folder to write into")
    parser.add_argument("--subjects", type=int, default=3, help="number of subjects (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--activities", nargs="*", default=None,
                        help=f"trials besides the static one (default: {' '.join(ACTIVITIES)})")
    parser.add_argument("--monocular", action="store_true",
                        help="add monocular-video-like depth error and jitter to the markers")


def run(args) -> int:
    """Write the cohort the parsed options ask for; print what was done."""
    paths = write_cohort(args.out, args.subjects, args.seed, args.activities, args.monocular)
    print(f"wrote {len(paths)} files under {args.out}"
          + ("" if paths else " (every subject was already complete)"))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.cohort", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
