"""Catalog tables at the warehouse root: subjects, trials, solves, failures.

Each is one small Parquet file rewritten atomically under an exclusive lock, so workers of one
machine that append at the same moment do not lose each other's rows. Rows are keyed: writing a
row whose key exists replaces it, so re-running a task does not duplicate its record.
"""
from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .store import write_atomic

KEYS = {
    "subjects": ["subject"],
    "trials": ["subject", "trial"],
    "solves": ["subject", "trial", "stage", "settings_hash"],
    "failures": ["subject", "trial", "stage"],
}


def catalog_path(root: str | Path, name: str) -> Path:
    if name not in KEYS:
        raise ValueError(f"unknown catalog table {name!r}; known: {sorted(KEYS)}")
    return Path(root) / f"{name}.parquet"


@contextmanager
def _locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "_catalog.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_catalog(root: str | Path, name: str) -> pd.DataFrame:
    path = catalog_path(root, name)
    if not path.exists():
        return pd.DataFrame(columns=KEYS[name])
    return pd.read_parquet(path)


def upsert(root: str | Path, name: str, rows: list[dict]) -> None:
    """Insert rows; a row whose key exists updates the columns it names and keeps the others
    (ingest writes a trial's frame count, ground truth later adds its quality numbers)."""
    if not rows:
        return
    root = Path(root)
    new = pd.DataFrame(rows)
    stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if "recorded_at" not in new:
        new["recorded_at"] = stamp
    for key in KEYS[name]:
        if key not in new:
            raise ValueError(f"{name} row without key column {key!r}")
        new[key] = new[key].astype(str)
    with _locked(root):
        old = read_catalog(root, name)
        keys = KEYS[name]
        new = new.drop_duplicates(subset=keys, keep="last").set_index(keys)
        if len(old):
            old = old.astype({k: str for k in keys}).set_index(keys)
            merged = new.combine_first(old)[list(dict.fromkeys([*old.columns, *new.columns]))]
        else:
            merged = new
        merged = merged.reset_index()
        write_atomic(pa.Table.from_pandas(merged, preserve_index=False), catalog_path(root, name))


def remove(root: str | Path, name: str, **key) -> None:
    """Drop rows matching the given key columns (a failure that later succeeded)."""
    root = Path(root)
    with _locked(root):
        old = read_catalog(root, name)
        if old.empty:
            return
        hit = pd.Series(True, index=old.index)
        for column, value in key.items():
            hit &= old[column].astype(str) == str(value)
        if hit.any():
            write_atomic(pa.Table.from_pandas(old[~hit].reset_index(drop=True),
                                              preserve_index=False), catalog_path(root, name))


def record_failure(root: str | Path, *, subject: str, trial: str, stage: str, problem: str,
                   file: str | None = None, hint: str | None = None) -> None:
    """One row per (subject, trial, stage). A stage that does not name a file (IK, Moco) gets
    the trial's raw file from trials.parquet, so every row says which recording it is about."""
    if not file:
        trials = read_catalog(root, "trials")
        if "source" in trials:
            hit = trials[(trials["subject"].astype(str) == str(subject))
                         & (trials["trial"].astype(str) == str(trial))]
            file = str(hit["source"].iloc[0]) if len(hit) else None
    upsert(root, "failures", [{"subject": subject, "trial": trial, "stage": stage,
                               "file": file or "", "problem": problem, "hint": hint or "",
                               "pid": os.getpid()}])
