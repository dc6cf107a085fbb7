"""Ground truth: scale each subject, run IK and Moco tracking per trial, publish to the warehouse.

    BuildDataset
      └─ WriteGroundTruth(subject, trial)      kinematics + kinetics leaves, solves rows
           └─ TrackMoco(subject, trial)        windows solved in subprocesses, stitched, gated
                └─ SolveIK(subject, trial)     OpenSim IK on the ingested markers
                     ├─ ScaleModel(subject)    ScaleTool on the static trial + tracking copy
                     └─ IngestTrial(...)
"""
from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import luigi

from pipeline.errors import IngestError, ModelError, SolveError
from pipeline.raw import discover, infer_activity, read_subject
from warehouse import catalog, store

from .base import HashedTask, file_sha256, paths, recorded, write_json_atomic
from .ingest import IngestTrial, record_discovery_problems


def _raw_subject(subject: str):
    """This subject's folder only: Luigi calls requires() often, and a lab has hundreds."""
    folder = Path(paths().raw) / subject
    if not folder.is_dir():
        raise ModelError(f"subject {subject} is not in the raw folder {paths().raw}",
                         hint="check [paths] raw in luigi.cfg")
    return read_subject(folder)[0]


def _ingest_task(subject: str, trial: str) -> IngestTrial:
    for raw_trial in _raw_subject(subject).trials:
        if raw_trial.trial == trial:
            return IngestTrial(subject=subject, trial=trial, path=str(raw_trial.path))
    raise IngestError(f"trial {trial} of subject {subject} has no raw file", trial=trial,
                      hint="add the trial file, or fix static_trial in subject.json")


class _Staged:
    """A folder of outputs built under a `_`-prefixed name and renamed into place whole."""

    def __init__(self, final: Path):
        self.final = final
        self.path = final.parent / f"_{final.name}.{uuid.uuid4().hex[:8]}"

    def __enter__(self) -> Path:
        self.path.mkdir(parents=True)
        return self.path

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            if self.final.exists():  # a concurrent worker finished first: keep its copy
                shutil.rmtree(self.path)
            else:
                self.path.rename(self.final)
        else:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


class ScaleModel(HashedTask):
    """The subject's model scaled to the static trial, and its torque-driven tracking copy."""

    subject = luigi.Parameter()
    move_markers = luigi.Parameter(default="soft_tissue",
                                   description="which markers scaling moves: soft_tissue, all, none")

    def requires(self):
        info = _raw_subject(self.subject).info
        if info["static_trial"] is None:  # the lab's model is already scaled
            return []
        return _ingest_task(self.subject, info["static_trial"])

    def output(self):
        return luigi.LocalTarget(self.artifact_dir(self.subject, self.settings_hash()))

    def run(self):
        recorded("scale", self.subject, "*", self._scale)

    def _scale(self):
        import opensim

        from osim.builtin_model import build_model
        from osim.prepare import prepare_for_tracking
        from osim.scale import load_lab_model, scale_model

        raw = _raw_subject(self.subject)
        info = raw.info
        if info.get("model"):
            model_path = Path(info["model"])
            model_path = model_path if model_path.is_absolute() else raw.folder / model_path
            generic = load_lab_model(model_path)
        else:
            generic = build_model(info["height_m"], info["mass_kg"], info["sex"],
                                  name=self.subject)
        final = Path(self.output().path)
        with _Staged(final) as stage:
            if info["static_trial"] is None:
                scaled = generic
                report = {"scaled": False, "model": str(model_path),
                          "why": "subject.json has no static trial: the lab's model is used "
                                 "as it is (already scaled)"}
            else:
                static, _ = store.read_leaf(_leaf("markers", self.subject, info["static_trial"]))
                scaled, report = scale_model(generic, static, info["mass_kg"],
                                             marker_map=info.get("markers"),
                                             move_markers=self.move_markers,
                                             trial=info["static_trial"], workdir=stage / "scale")
            scaled.printToXML(str(stage / "model.osim"))
            tracking = prepare_for_tracking(opensim.Model(str(stage / "model.osim")),
                                            info["height_m"], str(stage / "model.osim"))
            tracking.printToXML(str(stage / "tracking_model.osim"))
            write_json_atomic(stage / "report.json", report)
        catalog.upsert(paths().warehouse, "subjects", [{
            "subject": self.subject, "mass_kg": info["mass_kg"], "height_m": info["height_m"],
            "sex": info["sex"], "model": str(final / "model.osim"),
            "model_sha256": file_sha256(final / "model.osim"),
            "static_marker_rmse_m": report.get("marker_rmse_m"),
            "static_marker_max_m": report.get("marker_max_m"),
            "settings_hash": self.settings_hash()}])


def _leaf(table: str, subject: str, trial: str) -> Path:
    return store.leaf_path(paths().warehouse, table, subject, trial)


class SolveIK(HashedTask):
    """OpenSim inverse kinematics of one trial on the subject's scaled model."""

    subject = luigi.Parameter()
    trial = luigi.Parameter()
    marker_weights = luigi.DictParameter(default={},
                                         description="IK weight per marker name; others 1")

    def requires(self):
        return {"model": ScaleModel(subject=self.subject),
                "markers": _ingest_task(self.subject, self.trial)}

    def output(self):
        return luigi.LocalTarget(self.artifact_dir(self.subject, self.trial, self.settings_hash()))

    def run(self):
        recorded("ik", self.subject, self.trial, self._solve)

    def _solve(self):
        import opensim

        from osim.ik import inverse_kinematics
        from pipeline.opensim_files import write_sto
        from pipeline.trial import Trial

        markers, _ = store.read_leaf(_leaf("markers", self.subject, self.trial))
        trial = Trial(subject=self.subject, name=self.trial, markers=markers)
        model = opensim.Model(str(Path(self.input()["model"].path) / "model.osim"))
        result = inverse_kinematics(model, trial, weights=dict(self.marker_weights))
        with _Staged(Path(self.output().path)) as stage:
            write_sto(stage / "ik.sto", result.coordinates, in_degrees=False, name="ik")
            result.errors.to_parquet(stage / "marker_errors.parquet")


class TrackMoco(HashedTask):
    """MocoTrack of one trial's IK, in windows of at most `max_window_s`, each in a subprocess."""

    subject = luigi.Parameter()
    trial = luigi.Parameter()
    preset = luigi.Parameter(default="auto",
                             description="tracking preset; auto = by activity from the trial name")
    mesh_interval = luigi.FloatParameter(default=0.0, description="s; 0 = the preset's")
    filter_hz = luigi.FloatParameter(default=0.0, description="low-pass of the tracked "
                                     "coordinates, Hz; 0 = the preset's")
    contact_tracking_weight = luigi.FloatParameter(
        default=-1.0, description="weight of the force-plate tracking term (trials with plates);"
        " 0 = plates not tracked; negative = the preset's (1e-2, Moco's example)")
    engine = luigi.ChoiceParameter(default="moco", choices=["moco", "casadi"],
                                   description="moco (MocoTrack) or casadi (collocation/)")
    max_window_s = luigi.FloatParameter(default=2.0)
    overlap_s = luigi.FloatParameter(default=0.2)
    weld_joints = luigi.ListParameter(default=[], description="joints welded for tracking")
    timeout_s = luigi.FloatParameter(default=1800.0, significant=False,
                                     description="per window; a hung solve is killed")
    window_workers = luigi.IntParameter(default=1, significant=False,
                                        description="windows of one trial solved at once")

    def requires(self):
        return {"ik": SolveIK(subject=self.subject, trial=self.trial),
                "model": ScaleModel(subject=self.subject)}

    def output(self):
        return luigi.LocalTarget(self.artifact_dir(self.subject, self.trial, self.settings_hash()))

    def run(self):
        recorded("moco", self.subject, self.trial, self._track)

    def settings(self) -> dict:
        # The resolved settings, not only the parameters: a changed preset in the code must
        # give new artifacts too. The timeout does not change a solution.
        from dataclasses import asdict

        from osim.moco_track import CASADI_ONLY

        settings = self._settings()
        unused = ("timeout_s",) + (CASADI_ONLY if settings.engine == "moco" else ())
        resolved = {k: v for k, v in asdict(settings).items() if k not in unused}
        return {**super().settings(), "resolved": resolved}

    def _settings(self):
        from dataclasses import replace

        from osim.moco_track import PRESETS

        activity = infer_activity(self.trial) if self.preset == "auto" else self.preset
        if activity not in PRESETS:
            raise SolveError(f"unknown tracking preset {activity!r}",
                             hint=f"use one of {sorted(PRESETS)}")
        settings = PRESETS[activity]
        if self.mesh_interval > 0:
            settings = replace(settings, mesh_interval=self.mesh_interval)
        if self.filter_hz > 0:
            settings = replace(settings, filter_hz=self.filter_hz)
        if self.contact_tracking_weight >= 0:
            settings = replace(settings, contact_tracking_weight=self.contact_tracking_weight)
        settings = replace(settings, engine=self.engine)
        return replace(settings, weld_joints=tuple(self.weld_joints), timeout_s=self.timeout_s)

    def _track(self):
        from osim.ground_truth import track_trial

        settings = self._settings()
        ik_dir = Path(self.input()["ik"].path)
        model_dir = Path(self.input()["model"].path)
        grf_leaf = _leaf("grf_measured", self.subject, self.trial)
        info = _raw_subject(self.subject).info
        with _Staged(Path(self.output().path)) as stage:
            summary = track_trial(
                model=model_dir / "tracking_model.osim", ik=ik_dir / "ik.sto",
                grf_leaf=grf_leaf if grf_leaf.exists() else None, settings=settings,
                mass_kg=info["mass_kg"], height_m=info["height_m"], workdir=stage,
                max_window_s=self.max_window_s, overlap_s=self.overlap_s, trial=self.trial,
                progress=self._progress, window_workers=self.window_workers)
            write_json_atomic(stage / "summary.json", summary)

    def _progress(self, done: int, total: int, message: str):
        self.set_status_message(message)
        self.set_progress_percentage(int(100 * done / max(total, 1)))


class WriteGroundTruth(HashedTask):
    """Publish one trial's tracked kinematics and kinetics, with provenance, to the warehouse."""

    subject = luigi.Parameter()
    trial = luigi.Parameter()

    def requires(self):
        return {"moco": TrackMoco(subject=self.subject, trial=self.trial),
                "model": ScaleModel(subject=self.subject)}

    def output(self):
        return luigi.LocalTarget(
            self.artifact_dir(self.subject, self.trial, f"{self.settings_hash()}.json"))

    def run(self):
        import pandas as pd

        moco_dir = Path(self.input()["moco"].path)
        summary = json.loads((moco_dir / "summary.json").read_text())
        model_path = Path(self.input()["model"].path) / "tracking_model.osim"
        provenance = {"model_sha256": file_sha256(model_path),
                      "settings_hash": self.settings_hash(),
                      "versions": summary["versions"], "windows": summary["windows"],
                      "quality": summary["quality"], "engine": summary["engine"]}
        root = paths().warehouse
        leaves = [store.write_leaf(root, table, self.subject, self.trial,
                                   pd.read_parquet(moco_dir / f"{table}.parquet"),
                                   provenance=provenance)
                  for table in ("kinematics", "kinetics")]
        catalog.upsert(root, "solves", [
            {"subject": self.subject, "trial": self.trial,
             "stage": f"moco_window_{w.get('window', i)}" + (
                 "" if w.get("attempt", "as configured") == "as configured"
                 else f"_{w['attempt']}"),
             "settings_hash": self.settings_hash(), "engine": summary["engine"],
             "status": w["status"], "iterations": w["iterations"], "objective": w["objective"],
             "solve_seconds": w["solve_seconds"], "t0": w["t0"], "t1": w["t1"],
             "attempt": w.get("attempt", "as configured"), "used": w.get("final", True)}
            for i, w in enumerate(summary["windows"])])
        catalog.upsert(root, "trials", [{"subject": self.subject, "trial": self.trial,
                                         "ground_truth": True, **summary["quality"]}])
        for stage in ("scale", "ik", "moco", "quality"):
            catalog.remove(root, "failures", subject=self.subject, trial=self.trial, stage=stage)
        write_json_atomic(Path(self.output().path),
                          {"leaves": [str(p) for p in leaves], **provenance})


class BuildDataset(luigi.WrapperTask):
    """Ground truth for every motion trial of every subject in the raw folder."""

    def requires(self):
        subjects, problems = discover(paths().raw)
        record_discovery_problems(problems)
        return [WriteGroundTruth(subject=s.subject, trial=t.trial)
                for s in subjects for t in s.trials if t.trial != s.info["static_trial"]]
