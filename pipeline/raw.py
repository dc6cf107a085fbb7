"""The raw lab-data layout (DESIGN.md):

    <raw>/<subject>/subject.json
    <raw>/<subject>/<trial>.c3d | <trial>.trc [+ <trial>_grf.mot] | <trial>.npz

Names starting with `_` or `.` are ignored (scratch, ground-truth side files of the synthetic
cohort). Discovery never raises for one bad subject or trial: problems come back as records so the
rest of the batch goes on.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IngestError, ModelError

TRIAL_SUFFIXES = (".c3d", ".trc", ".npz")
GRF_SUFFIX = "_grf.mot"
SEXES = {"f": "F", "female": "F", "m": "M", "male": "M"}
MASS_RANGE_KG = (20.0, 250.0)
HEIGHT_RANGE_M = (1.0, 2.5)


@dataclass(frozen=True)
class RawTrial:
    subject: str
    trial: str
    path: Path

    @property
    def grf_path(self) -> Path | None:
        """OpenSim's convention for lab data: `<trial>_grf.mot` beside a TRC file."""
        candidate = self.path.with_name(self.trial + GRF_SUFFIX)
        return candidate if self.path.suffix == ".trc" and candidate.exists() else None


@dataclass
class RawSubject:
    subject: str
    folder: Path
    info: dict = field(default_factory=dict)
    trials: list[RawTrial] = field(default_factory=list)


def read_subject_info(folder: Path) -> dict:
    """subject.json, validated: mass_kg, height_m, sex (F/M), static_trial; optional model, markers."""
    path = folder / "subject.json"
    if not path.exists():
        raise ModelError("subject.json is missing", file=path,
                         hint="write subject.json with mass_kg, height_m, sex and static_trial")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"subject.json is not valid JSON: {exc}", file=path,
                         hint="fix the JSON syntax") from None
    if not isinstance(info, dict):
        raise ModelError("subject.json must hold an object", file=path)
    for key, (low, high), unit in (("mass_kg", MASS_RANGE_KG, "kg"),
                                   ("height_m", HEIGHT_RANGE_M, "m")):
        value = info.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ModelError(f"{key} is missing or not a number", file=path,
                             hint=f"give {key} in {unit}")
        if not low <= value <= high:
            raise ModelError(f"{key} = {value} {unit} is outside the plausible range "
                             f"{low}–{high} {unit}", file=path,
                             hint=f"check the units of {key} ({unit})")
    sex = SEXES.get(str(info.get("sex", "")).strip().lower())
    if sex is None:
        raise ModelError(f"sex {info.get('sex')!r} is not one of F, M", file=path,
                         hint='use "F" or "M"')
    info["sex"] = sex
    info.setdefault("static_trial", "static")
    # "static_trial": null means the lab's model is already scaled to this subject (an
    # AddBiomechanics or ScaleTool output): it is used as it is, so it must be named.
    if info["static_trial"] is None and not info.get("model"):
        raise ModelError("static_trial is null but no model is given", file=path,
                         hint="name the subject's scaled .osim in \"model\", or give a static "
                         "trial to scale the built-in model")
    return info


def read_subject(folder: Path) -> tuple[RawSubject, list[IngestError]]:
    """One subject folder: its validated subject.json and its trials, and the trials that could
    not be taken (duplicate names). Raises ModelError for a missing or bad subject.json."""
    subject = RawSubject(folder.name, folder, info=read_subject_info(folder))
    problems = []
    by_name: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and not _hidden(path) and path.suffix.lower() in TRIAL_SUFFIXES:
            by_name.setdefault(path.stem, []).append(path)
    for name, paths in by_name.items():
        if len(paths) > 1:
            problems.append(IngestError(
                f"trial name {name!r} is used by {len(paths)} files "
                f"({', '.join(p.name for p in paths)})", file=paths[0], trial=name,
                hint="keep one file per trial name or rename the others"))
            continue
        subject.trials.append(RawTrial(folder.name, name, paths[0]))
    return subject, problems


def discover(raw_dir: str | Path) -> tuple[list[RawSubject], list[IngestError | ModelError]]:
    """Subjects and trials under a raw folder, and the problems found on the way."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise IngestError(f"raw folder {raw_dir} does not exist",
                          hint="point [paths] raw in luigi.cfg at the lab data")
    subjects, problems = [], []
    for folder in sorted(p for p in raw_dir.iterdir() if p.is_dir() and not _hidden(p)):
        try:
            subject, found = read_subject(folder)
        except ModelError as exc:
            problems.append(exc)
            continue
        subjects.append(subject)
        problems += found
    return subjects, problems


def _hidden(path: Path) -> bool:
    return path.name.startswith(("_", "."))


ACTIVITY_WORDS = (("static", "static"), ("walk", "walking"), ("gait", "walking"),
                  ("run", "running"), ("jog", "running"), ("squat", "squat"),
                  ("sit", "sit_to_stand"), ("sts", "sit_to_stand"), ("jump", "jump"),
                  ("hop", "jump"))


def infer_activity(trial: str) -> str:
    """The activity a trial name announces (`walk_fast_01` -> walking), else `other`."""
    lowered = trial.lower()
    for word, activity in ACTIVITY_WORDS:
        if word in lowered:
            return activity
    return "other"
