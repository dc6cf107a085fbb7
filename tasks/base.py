"""What every task shares: the data roots, settings hashes and atomic small outputs."""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import luigi

from pipeline.errors import PipelineError
from warehouse import catalog


class paths(luigi.Config):  # noqa: N801 -- luigi maps the class name to the [paths] section
    raw = luigi.Parameter(default="data/raw", description="raw lab data (or the synthetic cohort)")
    warehouse = luigi.Parameter(default="data/warehouse", description="Parquet warehouse root")
    artifacts = luigi.Parameter(default="data/artifacts",
                                description="solver scratch, models, checkpoints, reports")


class HashedTask(luigi.Task):
    """A task whose outputs live under a hash of its settings and of its upstream tasks' settings
    (gokart's idea): change a setting anywhere upstream and the output path changes, so nothing
    stale is reused and nothing old is overwritten. Identity parameters (which subject, which
    trial) are left out of the settings hash so one hash names one configuration of the pipeline.
    """

    identity: tuple[str, ...] = ("subject", "trial")

    def settings(self) -> dict:
        params = self.to_str_params(only_significant=True, only_public=True)
        return {k: v for k, v in sorted(params.items()) if k not in self.identity}

    def settings_hash(self) -> str:
        upstream = sorted(t.settings_hash() for t in luigi.task.flatten(self.requires())
                          if isinstance(t, HashedTask))
        payload = json.dumps({"task": self.get_task_family(), "settings": self.settings(),
                              "upstream": upstream}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]

    def artifact_dir(self, *parts: str) -> Path:
        # Absolute: OpenSim's tools resolve relative paths against their setup file's folder.
        return Path(paths().artifacts).resolve().joinpath(self.get_task_family(), *parts)


def write_json_atomic(path: str | Path, payload: dict) -> None:
    """Small manifests: readers see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f"_{path.name}.{uuid.uuid4().hex}.tmp"
    staging.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
    os.replace(staging, path)


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recorded(stage: str, subject: str, trial: str, work, file: str | None = None):
    """Run `work()`; any failure becomes a failures row before it fails the task. Unexpected
    exceptions (OpenSim's own, bugs) are recorded too, under the stage that raised them."""
    try:
        return work()
    except PipelineError as exc:
        catalog.record_failure(paths().warehouse, subject=subject, trial=exc.trial or trial,
                               stage=exc.stage, problem=exc.problem, file=exc.file or file,
                               hint=exc.hint)
        raise
    except Exception as exc:
        catalog.record_failure(paths().warehouse, subject=subject, trial=trial, stage=stage,
                               problem=f"{type(exc).__name__}: {exc}".strip()[:2000], file=file,
                               hint="unexpected error: see the task log; report it with the "
                               "artifacts folder")
        raise
