"""Atomic Parquet leaves: `<root>/<table>/subject=<id>/trial=<id>/part-0.parquet`.

Nothing partial is ever visible: a leaf is written under a name starting with `_` (which pyarrow's
dataset discovery ignores) and renamed into place, and an existing leaf is replaced in one rename.
"""
from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .schema import unit_of

LEAF = "part-0.parquet"
# Crash-test hook (tests/test_crash_recovery.py): a writer whose target path contains this
# string kills its own process with SIGKILL after staging the file and before the rename.
CRASH_ENV = "WAREHOUSE_TEST_KILL_BEFORE_RENAME"
# pyarrow would read `subject=01` as the integer 1 (DESIGN.md trap 6).
PARTITIONING = ds.partitioning(pa.schema([("subject", pa.string()), ("trial", pa.string())]),
                               flavor="hive")


def leaf_path(root: str | Path, table: str, subject: str, trial: str) -> Path:
    return Path(root) / table / f"subject={subject}" / f"trial={trial}" / LEAF


def to_arrow(df: pd.DataFrame, table: str, provenance: dict | None = None,
             units: dict[str, str] | None = None) -> pa.Table:
    """DataFrame -> Arrow table with units in field metadata and provenance in schema metadata."""
    frame = df.reset_index() if df.index.name else df
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    units = units or {}
    fields = []
    for field in arrow.schema:
        unit = units.get(field.name) or unit_of(field.name, table)
        fields.append(field.with_metadata({"unit": unit}) if unit else field)
    meta = {"table": table}
    if provenance:
        meta["provenance"] = json.dumps(provenance, sort_keys=True, default=str)
    return arrow.cast(pa.schema(fields, metadata=meta))


def write_atomic(arrow: pa.Table, path: Path) -> Path:
    """Write a Parquet file so that readers see either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f"_{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(arrow, staging)
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        if os.environ.get(CRASH_ENV) and os.environ[CRASH_ENV] in str(path):
            os.kill(os.getpid(), signal.SIGKILL)
        os.replace(staging, path)
    finally:
        staging.unlink(missing_ok=True)
    return path


def write_leaf(root: str | Path, table: str, subject: str, trial: str, df: pd.DataFrame, *,
               provenance: dict | None = None, units: dict[str, str] | None = None) -> Path:
    """Write one trial's rows of one table atomically; returns the leaf path."""
    return write_atomic(to_arrow(df, table, provenance, units),
                        leaf_path(root, table, subject, trial))


def read_leaf(path: str | Path) -> tuple[pd.DataFrame, dict]:
    """One leaf as a DataFrame (time as index when present) and its provenance."""
    arrow = pq.read_table(path)
    meta = arrow.schema.metadata or {}
    provenance = json.loads(meta.get(b"provenance", b"{}"))
    df = arrow.to_pandas()
    if "time" in df.columns:
        df = df.set_index("time")
    return df, provenance


def units_of(path: str | Path) -> dict[str, str]:
    """Column -> unit, from a leaf's field metadata."""
    schema = pq.read_schema(path)
    return {f.name: (f.metadata or {}).get(b"unit", b"").decode() for f in schema}


def read_table(root: str | Path, table: str, subjects: list[str] | None = None) -> pd.DataFrame:
    """Every leaf of a table, with `subject` and `trial` as string columns."""
    base = Path(root) / table
    if not base.exists():
        return pd.DataFrame()
    dataset = ds.dataset(base, format="parquet", partitioning=PARTITIONING)
    expr = ds.field("subject").isin(subjects) if subjects else None
    return dataset.to_table(filter=expr).to_pandas()
