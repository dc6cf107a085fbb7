"""Thin Luigi wrappers: `luigi --module tasks BuildDataset` and friends. Nothing imports `tasks`."""
from .evaluate import AblateLosses, AblateOutput, Ablations, Evaluate, RunAll
from .ground_truth import BuildDataset, ScaleModel, SolveIK, TrackMoco, WriteGroundTruth
from .ingest import IngestRaw, IngestTrial, RawTrialFile
from .train import Predict, TrainModel

__all__ = ["AblateLosses", "AblateOutput", "Ablations", "BuildDataset", "Evaluate", "IngestRaw",
           "IngestTrial", "Predict", "RawTrialFile", "RunAll", "ScaleModel", "SolveIK",
           "TrackMoco", "TrainModel", "WriteGroundTruth"]
