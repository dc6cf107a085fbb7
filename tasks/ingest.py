"""Ingest: raw trial files -> the `markers` and `grf_measured` warehouse tables."""
from __future__ import annotations

import logging
from pathlib import Path

import luigi

from pipeline.errors import PipelineError
from pipeline.raw import discover, infer_activity
from warehouse import catalog, store

from .base import HashedTask, file_sha256, paths, recorded, write_json_atomic


class RawTrialFile(luigi.ExternalTask):
    """A trial file the lab recorded: data the pipeline did not make."""

    path = luigi.Parameter()

    def output(self):
        return luigi.LocalTarget(self.path)


class IngestTrial(HashedTask):
    """Read one raw trial (C3D, TRC [+ _grf.mot], SMPL .npz) into the warehouse."""

    subject = luigi.Parameter()
    trial = luigi.Parameter()
    path = luigi.Parameter(description="the raw trial file")
    up_axis = luigi.Parameter(default="auto", description="lab vertical axis: auto, x, y or z")
    grf_cutoff_hz = luigi.FloatParameter(default=0.0,
                                         description="low-pass of plate signals; 0 = none")

    def requires(self):
        return RawTrialFile(self.path)

    def output(self):
        return luigi.LocalTarget(
            self.artifact_dir(self.subject, self.trial, f"{self.settings_hash()}.json"))

    def run(self):
        from pipeline.ingest import load_trial

        root = paths().warehouse
        trial = recorded("ingest", self.subject, self.trial, lambda: load_trial(
            self.path, subject=self.subject,
            up_axis=None if self.up_axis == "auto" else self.up_axis,
            grf_cutoff_hz=self.grf_cutoff_hz or None), file=self.path)
        provenance = {"source": self.path, "source_sha256": file_sha256(self.path),
                      "settings_hash": self.settings_hash(), "settings": self.settings()}
        leaves = [store.write_leaf(root, "markers", self.subject, self.trial, trial.markers,
                                   provenance=provenance)]
        if trial.grf is not None:
            leaves.append(store.write_leaf(root, "grf_measured", self.subject, self.trial,
                                           trial.grf, provenance=provenance))
        catalog.upsert(root, "trials", [{
            "subject": self.subject, "trial": self.trial, "activity": infer_activity(self.trial),
            "source": self.path, "frames": len(trial.markers), "rate_hz": trial.rate_hz,
            "markers": len(trial.marker_names), "has_grf": trial.grf is not None}])
        catalog.remove(root, "failures", subject=self.subject, trial=self.trial, stage="ingest")
        write_json_atomic(self.output().path, {"leaves": [str(p) for p in leaves], **provenance})


class IngestRaw(luigi.WrapperTask):
    """Every trial of the raw folder; problems found while discovering them are recorded."""

    raw = luigi.Parameter(default="", description="raw folder; default [paths] raw")

    def requires(self):
        subjects, problems = discover(self.raw or paths().raw)
        record_discovery_problems(problems)
        return [IngestTrial(subject=t.subject, trial=t.trial, path=str(t.path))
                for s in subjects for t in s.trials]


def record_discovery_problems(problems: list[PipelineError]) -> None:
    """Problems found while listing the raw folder (bad subject.json, duplicate trial names)."""
    for problem in problems:
        subject = Path(problem.file).parent.name if problem.file else "*"
        catalog.record_failure(paths().warehouse, subject=subject, trial=problem.trial or "*",
                               stage=problem.stage, problem=problem.problem, file=problem.file,
                               hint=problem.hint)


@luigi.Task.event_handler(luigi.Event.BROKEN_TASK)
def record_broken_task(task, exc) -> None:
    """A requires() that raises (a static trial without a file, a subject folder that vanished)
    breaks the task in Luigi's scheduling, before run() and `recorded`: record it all the same."""
    _record_planning_error(task, exc)


@luigi.Task.event_handler(luigi.Event.DEPENDENCY_MISSING)
def record_incomplete_check_error(task) -> None:
    """Luigi reports a complete() that raised as a missing dependency and drops the exception.
    Our complete() raises when an upstream requires() does (output paths hash the upstream
    settings), so ask once more to learn why; an external file simply missing raises nothing."""
    try:
        task.complete()
    except Exception as exc:  # the same error Luigi swallowed
        _record_planning_error(task, exc)


def _record_planning_error(task, exc: Exception) -> None:
    """One failures row for an error raised while Luigi planned `task`, naming the subject's
    folder when the error names no file (re-raising tasks of one subject share the row)."""
    subject = str(getattr(task, "subject", "*"))
    try:
        folder = str(Path(paths().raw) / subject) if subject != "*" else None
        if isinstance(exc, PipelineError):
            catalog.record_failure(paths().warehouse, subject=subject,
                                   trial=exc.trial or str(getattr(task, "trial", "*")),
                                   stage=exc.stage, problem=exc.problem,
                                   file=exc.file or folder, hint=exc.hint)
        else:
            catalog.record_failure(paths().warehouse, subject=subject,
                                   trial=str(getattr(task, "trial", "*")), stage="schedule",
                                   problem=f"{type(exc).__name__}: {exc}"[:2000], file=folder,
                                   hint="unexpected error while planning the task: see the log")
    except Exception:  # never let bookkeeping hide the original error
        logging.getLogger("luigi-interface").exception("could not record the failure of %s",
                                                       task)
