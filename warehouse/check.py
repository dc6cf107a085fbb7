"""`python -m warehouse check`: is the warehouse whole? Every leaf against the catalog, its schema
and provenance, and the debris a killed writer can leave behind.

Problems (exit status 1) are things a reader would get wrong: a ground-truth trial missing a
table, a leaf the catalog does not know, kinematics and kinetics of different lengths, a leaf
without units or provenance, duplicate catalog keys, a file pyarrow would read as data that is
not a leaf (`...-luigi-tmp-NNN`), a finished-task manifest pointing at a missing leaf.

Warnings (exit status 0) are harmless: staging files and folders whose name starts with `_`
(pyarrow and the tasks ignore them) left by a process killed between writing and renaming. They
are reported, and `--clean` deletes those older than `--min-age-s` (never a live writer's).
"""
from __future__ import annotations

import json
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from .catalog import KEYS, read_catalog
from .schema import TABLES
from .store import LEAF

PROBLEM, WARNING = "problem", "warning"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
LUIGI_TMP = "-luigi-tmp-"
# Provenance every leaf must carry, by table.
PROVENANCE = {"markers": ("settings_hash", "source_sha256"),
              "grf_measured": ("settings_hash", "source_sha256"),
              "kinematics": ("settings_hash", "model_sha256", "windows"),
              "kinetics": ("settings_hash", "model_sha256", "windows")}
GROUND_TRUTH = ("kinematics", "kinetics")


@dataclass(frozen=True)
class Finding:
    level: str  # PROBLEM or WARNING
    kind: str  # short tag: "orphan-leaf", "staging-leftover", ...
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level.upper():7s} {self.kind:18s} {self.path}: {self.message}"


# What the pipeline's atomic writers stage under: `_<name>.<hex>.tmp` (store.write_atomic,
# tasks.base.write_json_atomic) and `_<name>.<hex>` folders (tasks.ground_truth._Staged). Other
# `_` names (the cohort's `_truth`, `_catalog.lock`) are not debris and are never deleted.
STAGING = re.compile(r"^_.+\.[0-9a-f]{8,32}(\.tmp)?$")


def _staging(path: Path) -> bool:
    return bool(STAGING.match(path.name))


def _leaves(root: Path) -> tuple[dict, list[Finding]]:
    """{(table, subject, trial): leaf path} and the findings about stray files under the tables."""
    leaves, findings = {}, []
    for table in TABLES:
        base = root / table
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            rel = path.relative_to(base).parts
            if any(part.startswith(("_", ".")) for part in rel):
                if _staging(path):  # report the outermost staging name only
                    findings.append(Finding(WARNING, "staging-leftover", str(path),
                                            "left by a writer killed before its rename; "
                                            "ignored by readers"))
                continue
            if path.is_dir():
                continue
            if (len(rel) == 3 and rel[0].startswith("subject=") and rel[1].startswith("trial=")
                    and rel[2] == LEAF):
                leaves[(table, rel[0][8:], rel[1][6:])] = path
            else:
                why = ("a Luigi temporary file: readers take it for data" if LUIGI_TMP in path.name
                       else f"not a leaf ({LEAF} under subject=/trial=) but read as data")
                findings.append(Finding(PROBLEM, "stray-file", str(path), why))
    return leaves, findings


def _check_leaf(table: str, path: Path) -> tuple[int | None, dict, list[Finding]]:
    """(rows, provenance, findings) of one leaf: readable, non-empty, units, provenance."""
    try:
        meta = pq.read_metadata(path)
        schema = pq.read_schema(path)
    except Exception as exc:  # a truncated or foreign file
        return None, {}, [Finding(PROBLEM, "unreadable-leaf", str(path), f"{exc}")]
    findings = []
    if meta.num_rows == 0:
        findings.append(Finding(PROBLEM, "empty-leaf", str(path), "no rows"))
    if "time" not in schema.names:
        findings.append(Finding(PROBLEM, "schema", str(path), "no time column"))
    no_unit = [f.name for f in schema if not (f.metadata or {}).get(b"unit")]
    if no_unit:
        findings.append(Finding(PROBLEM, "schema", str(path),
                                f"columns without a unit in their metadata: {no_unit[:5]}"
                                + (" ..." if len(no_unit) > 5 else "")))
    raw = (schema.metadata or {}).get(b"provenance")
    provenance = {}
    try:
        provenance = json.loads(raw) if raw else {}
    except json.JSONDecodeError:
        pass
    missing = [k for k in PROVENANCE[table] if not provenance.get(k)]
    if missing:
        findings.append(Finding(PROBLEM, "provenance", str(path),
                                f"provenance lacks {missing}"))
    elif "model_sha256" in PROVENANCE[table] and not SHA256.match(str(provenance["model_sha256"])):
        findings.append(Finding(PROBLEM, "provenance", str(path), "model_sha256 is not a sha256"))
    return meta.num_rows, provenance, findings


def _catalogs(root: Path) -> tuple[dict, list[Finding]]:
    tables, findings = {}, []
    for name, keys in KEYS.items():
        path = root / f"{name}.parquet"
        if not path.exists():
            continue
        try:
            df = read_catalog(root, name)
        except Exception as exc:
            findings.append(Finding(PROBLEM, "unreadable-catalog", str(path), f"{exc}"))
            continue
        dupes = df[df.duplicated(subset=keys, keep=False)]
        if len(dupes):
            shown = sorted({"/".join(map(str, row)) for row in dupes[keys].to_numpy()})
            findings.append(Finding(PROBLEM, "duplicate-key", str(path),
                                    f"{len(dupes)} rows share keys: {shown[:5]}"))
        tables[name] = df.astype({k: str for k in keys})
    return tables, findings


def _ground_truth_trials(trials) -> set[tuple[str, str]]:
    if trials is None or "ground_truth" not in trials:
        return set()
    done = trials[trials["ground_truth"].fillna(False).astype(bool)]
    return set(zip(done["subject"], done["trial"], strict=True))


def check_warehouse(root: str | Path) -> list[Finding]:
    """Every finding about the warehouse at `root` (see the module docstring)."""
    root = Path(root)
    if not root.is_dir():
        return [Finding(PROBLEM, "missing", str(root), "no warehouse here")]
    if not any((root / name).exists() for name in (*TABLES, *(f"{c}.parquet" for c in KEYS))):
        return [Finding(PROBLEM, "missing", str(root), "not a warehouse: no tables, no catalog")]
    leaves, findings = _leaves(root)
    catalogs, found = _catalogs(root)
    findings += found
    for path in sorted(root.iterdir()):
        if path.is_file() and _staging(path):
            findings.append(Finding(WARNING, "staging-leftover", str(path),
                                    "catalog write killed before its rename; ignored"))
        elif path.is_file() and LUIGI_TMP in path.name:
            findings.append(Finding(PROBLEM, "stray-file", str(path), "a Luigi temporary file"))

    rows, provenance = {}, {}
    for key, path in leaves.items():
        rows[key], provenance[key], found = _check_leaf(key[0], path)
        findings += found

    trials = catalogs.get("trials")
    known = set(zip(trials["subject"], trials["trial"], strict=True)) if trials is not None \
        else set()
    truth = _ground_truth_trials(trials)
    for (table, subject, trial), path in leaves.items():
        if (subject, trial) not in known:
            findings.append(Finding(PROBLEM, "orphan-leaf", str(path),
                                    "trials.parquet has no row for this trial"))
        elif table in GROUND_TRUTH and (subject, trial) not in truth:
            findings.append(Finding(PROBLEM, "orphan-leaf", str(path),
                                    "trials.parquet does not mark this trial ground_truth"))
    for subject, trial in sorted(truth):
        where = f"{subject}/{trial}"
        have = {t: (t, subject, trial) in leaves for t in ("markers", *GROUND_TRUTH)}
        for table, present in have.items():
            if not present:
                findings.append(Finding(PROBLEM, "missing-leaf", where,
                                        f"ground_truth trial without a {table} leaf"))
        if not (have["kinematics"] and have["kinetics"]):
            continue
        kin, dyn = ("kinematics", subject, trial), ("kinetics", subject, trial)
        if rows[kin] is not None and rows[dyn] is not None and rows[kin] != rows[dyn]:
            findings.append(Finding(PROBLEM, "row-count", where,
                                    f"kinematics has {rows[kin]} frames, kinetics {rows[dyn]}"))
        findings += _check_solves(catalogs.get("solves"), subject, trial, provenance[kin],
                                  provenance[dyn])
    subjects = catalogs.get("subjects")
    if truth and subjects is not None:
        missing = sorted({s for s, _ in truth} - set(subjects["subject"]))
        if missing:
            findings.append(Finding(PROBLEM, "catalog", str(root / "subjects.parquet"),
                                    f"no row for subjects with ground truth: {missing}"))
    return findings


def _check_solves(solves, subject: str, trial: str, kin: dict, dyn: dict) -> list[Finding]:
    """The solve log agrees with the leaves: one row per window of the published settings."""
    where = f"{subject}/{trial}"
    settings = kin.get("settings_hash")
    if settings != dyn.get("settings_hash"):
        return [Finding(PROBLEM, "provenance", where,
                        f"kinematics ({settings}) and kinetics ({dyn.get('settings_hash')}) "
                        "come from different settings")]
    if solves is None:
        return [Finding(PROBLEM, "solve-log", where, "no solves.parquet")]
    mine = solves[(solves["subject"] == subject) & (solves["trial"] == trial)
                  & (solves["settings_hash"] == str(settings))]
    windows = len(kin.get("windows") or [])
    if len(mine) != windows:
        return [Finding(PROBLEM, "solve-log", where,
                        f"{len(mine)} solves rows for settings {settings}, {windows} windows in "
                        "the leaves' provenance")]
    return []


def check_artifacts(root: str | Path) -> list[Finding]:
    """Staging leftovers and Luigi temporaries under the artifacts folder, and manifests of
    finished tasks whose warehouse leaves are gone (Luigi would wrongly call them complete)."""
    root = Path(root)
    if not root.is_dir():
        return [Finding(PROBLEM, "missing", str(root), "no artifacts folder here")]
    findings = []
    for path in _outermost(root):
        if _staging(path):
            findings.append(Finding(WARNING, "staging-leftover", str(path),
                                    "scratch of a task killed before its rename; ignored"))
        elif LUIGI_TMP in path.name:
            findings.append(Finding(PROBLEM, "stray-file", str(path), "a Luigi temporary file"))
    for family in ("IngestTrial", "WriteGroundTruth"):
        for manifest in sorted((root / family).glob("*/*/*.json")):
            if _staging(manifest):
                continue
            try:
                listed = json.loads(manifest.read_text()).get("leaves", [])
            except (OSError, json.JSONDecodeError) as exc:
                findings.append(Finding(PROBLEM, "manifest", str(manifest), f"unreadable: {exc}"))
                continue
            gone = [leaf for leaf in listed if not Path(leaf).exists()]
            if gone:
                findings.append(Finding(PROBLEM, "manifest", str(manifest),
                                        f"task marked done but its leaves are missing: {gone}"))
    return findings


def _outermost(root: Path):
    """Paths under root, not descending into `_` staging folders (one finding per leftover)."""
    for path in sorted(root.iterdir()):
        yield path
        if path.is_dir() and not _staging(path) and not path.is_symlink():
            yield from _outermost(path)


def clean(findings: list[Finding], min_age_s: float = 3600.0) -> list[str]:
    """Delete the staging leftovers among `findings` last modified at least `min_age_s` ago
    (a younger one may belong to a writer still running). Returns what was deleted."""
    removed = []
    now = time.time()
    for finding in findings:
        path = Path(finding.path)
        if finding.kind != "staging-leftover" or not path.exists():
            continue
        if now - path.stat().st_mtime < min_age_s:
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        removed.append(str(path))
    return removed
