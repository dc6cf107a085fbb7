"""One exception class per stage. Messages say what went wrong, in which file and trial, and what
to do next; the warehouse records them as rows of `failures.parquet`."""
from __future__ import annotations

from pathlib import Path


class PipelineError(Exception):
    """Base class: a failure of one unit of work (a trial, a subject) that the batch survives."""

    stage = "pipeline"

    def __init__(self, problem: str, *, file: str | Path | None = None, trial: str | None = None,
                 hint: str | None = None):
        self.problem = problem
        self.file = str(file) if file is not None else None
        self.trial = trial
        self.hint = hint
        where = ", ".join(x for x in (f"file {self.file}" if self.file else "",
                                      f"trial {trial}" if trial else "") if x)
        message = f"[{self.stage}] {problem}"
        if where:
            message += f" ({where})"
        if hint:
            message += f". What to do: {hint}"
        super().__init__(message)

    def as_record(self) -> dict:
        """The failure as a warehouse row."""
        return {"stage": self.stage, "file": self.file, "trial": self.trial,
                "problem": self.problem, "hint": self.hint}


class IngestError(PipelineError):
    """Raw trial files that cannot be read or make no sense (C3D, TRC/MOT, SMPL .npz)."""

    stage = "ingest"


class ModelError(PipelineError):
    """A model that cannot be built, loaded or prepared (bad subject data, broken .osim)."""

    stage = "model"


class SolveError(PipelineError):
    """An optimal-control solve that failed, timed out or crashed."""

    stage = "moco"


class QualityError(PipelineError):
    """A solution that converged but fails the quality gates (residuals, tracking, GRF)."""

    stage = "quality"
