"""Thin Luigi wrappers: `luigi --module tasks BuildDataset` and friends. Nothing imports `tasks`."""
from .ground_truth import BuildDataset, ScaleModel, SolveIK, TrackMoco, WriteGroundTruth
from .ingest import IngestRaw, IngestTrial, RawTrialFile

__all__ = ["BuildDataset", "IngestRaw", "IngestTrial", "RawTrialFile", "ScaleModel", "SolveIK",
           "TrackMoco", "WriteGroundTruth"]
