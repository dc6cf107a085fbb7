"""Training and inference tasks: `TrainModel` (MonoMSK on the warehouse) and `Predict`
(kinematics and kinetics of a new trial from a trained checkpoint)."""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import luigi

from warehouse import store

from .base import HashedTask, file_sha256, paths, write_json_atomic


def _multibodies(cohort, folder: Path) -> dict:
    """Each subject's Multibody, through a JSON tree cached by the model file's sha256 (the
    export needs opensim; the trainer does not)."""
    from models.dynamics import Multibody
    from osim.export_tree import write_tree

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for subject in cohort.subject_ids:
        model = cohort.subjects[subject]["model"]
        tree = folder / f"{file_sha256(model)[:16]}.json"
        if not tree.exists():
            write_tree(model, tree)
        out[subject] = Multibody.from_json(tree)
    return out


def _write_parquet(rows: list[dict], path: Path) -> None:
    import pandas as pd
    import pyarrow as pa

    store.write_atomic(pa.Table.from_pandas(pd.DataFrame(rows), preserve_index=False), path)


class OutputModeParameter(luigi.ChoiceParameter):
    """TrainModel's `output` parameter ("single" | "multi") shares its name with Luigi's
    `Task.output()`. Luigi parameters are descriptors: this one keeps the value (read it as
    `task.output_mode`) and, read from an instance, returns the task's bound output method
    (`output_target`). Every task that passes TrainModel's parameters through uses it."""

    def __get__(self, instance, owner):
        if instance is None:
            return self
        return instance.output_target


class TrainModel(HashedTask):
    """Train MonoMSK (IKT, IDT, FD and FK layers) on every trial of the warehouse with ground
    truth. Resumes from the checkpoint in its folder when restarted; run.json is written last."""

    identity = ("run_name",)
    run_name = luigi.Parameter(description="name of the run (e.g. nightly-2026-11-21)")
    seed = luigi.IntParameter(default=0, description="split, initialisation and noise seed")
    preset = luigi.ChoiceParameter(default="default", choices=["default", "paper", "tiny"],
                                   description="network size and schedule (models/config.py)")
    losses = luigi.ListParameter(default=["lambda", "tau", "q", "J"],
                                 description="switchable losses (paper Table 3)")
    output = OutputModeParameter(default="single", choices=["single", "multi"],
                         description="FD single- or multi-frame-out (paper Table 4)")
    architecture = luigi.ChoiceParameter(default="monomsk", choices=["monomsk", "mlp"],
                                         description="MonoMSK or the per-frame MLP baseline")
    epochs = luigi.IntParameter(default=0, description="total epochs; 0 = the preset's")

    def settings(self) -> dict:
        # The warehouse is part of what was trained on: another root, another path.
        return {**super().settings(), "warehouse": str(Path(paths().warehouse).resolve())}

    def folder(self) -> Path:
        return self.artifact_dir(self.run_name, self.settings_hash())

    @property
    def output_mode(self) -> str:
        return self.param_kwargs["output"]

    def output_target(self):
        return luigi.LocalTarget(str(self.folder() / "run.json"))

    def config(self):
        from models.config import make_config

        return make_config(self.preset, seed=self.seed, losses=list(self.losses),
                           output=self.output_mode, architecture=self.architecture,
                           epochs=self.epochs)

    def run(self):
        from models.data import load_cohort
        from models.training import barrier, distributed, fit

        cfg = self.config()
        folder = self.folder()
        cohort = load_cohort(paths().warehouse)
        needs_bodies = cfg.architecture == "monomsk"
        rank, world = distributed()  # under torchrun: rank 0 exports the trees, then all read
        if needs_bodies and rank == 0:
            _multibodies(cohort, self.artifact_dir("trees"))
        if world > 1:
            barrier()
        bodies = _multibodies(cohort, self.artifact_dir("trees")) if needs_bodies else None
        began = time.time()

        def progress(done: int, total: int, rows: list[dict]) -> None:
            last = {r["split"]: r for r in rows if r["epoch"] == done}
            val = last.get("val", last.get("train", {}))
            if self.set_status_message:  # None outside a Luigi worker (task.run() by hand)
                self.set_status_message(f"epoch {done}/{total} ({val.get('phase')}): "
                                        f"loss {val.get('loss', float('nan')):.4g}")
                self.set_progress_percentage(int(100 * done / max(total, 1)))
            _write_parquet(rows, folder / "metrics.parquet")

        result = fit(cfg, cohort, bodies, folder / "checkpoint.pt",
                     on_epoch=progress if rank == 0 else None)
        if rank != 0:  # one writer: rank 0 publishes the run
            return
        _write_parquet(result["metrics"], folder / "metrics.parquet")
        final = {r["split"]: r for r in result["metrics"] if r["epoch"] == cfg.epochs}
        write_json_atomic(self.output().path, {
            "run_name": self.run_name, "settings_hash": self.settings_hash(),
            "settings": self.settings(), "config": cfg.to_dict(), "split": result["split"],
            "subjects": cohort.subjects and sorted(cohort.subjects),
            "trials": [f"{t.subject}/{t.trial}" for t in cohort.trials],
            "coordinate_names": cohort.coordinate_names, "marker_names": cohort.marker_names,
            "checkpoint": str(folder / "checkpoint.pt"),
            "metrics": str(folder / "metrics.parquet"), "final": final,
            "train_seconds_this_run": time.time() - began, "fd_seconds": result["fd_seconds"]})


def _plot(out: dict, coordinates: list[str], folder: Path, title: str) -> None:
    """q.png (deg | m), tau.png (N·m | N) and grf.png (N) of a prediction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from models.predict import torque_name

    kin, kinetics = out["kinematics"], out["kinetics"]
    t = kin["time"].to_numpy()
    panels = {
        "q": [(c, np.degrees(kin[c]) if not c.endswith(("_tx", "_ty", "_tz")) else kin[c])
              for c in coordinates],
        "tau": [(torque_name(c), kinetics[torque_name(c)]) for c in coordinates],
        "grf": [(c, kinetics[c]) for c in kinetics.columns if c.startswith("ground_force")],
    }
    units = {"q": "deg (translations m)", "tau": "N·m (translations N)", "grf": "N"}
    for name, series in panels.items():
        # One axes per quantity: subplot grids cost seconds each to lay out.
        fig, ax = plt.subplots(figsize=(10, 5))
        for label, values in series:
            ax.plot(t, values, lw=1.0, label=label)
        ax.set_xlabel("time (s)")
        ax.set_ylabel(units[name])
        ax.set_title(f"{title}: predicted {name}")
        ax.legend(fontsize=6, ncol=2, loc="center left", bbox_to_anchor=(1.0, 0.5))
        fig.subplots_adjust(left=0.08, right=0.72, bottom=0.1, top=0.92)
        staging = folder / f"_{name}.png"
        fig.savefig(staging, dpi=80)
        plt.close(fig)
        staging.replace(folder / f"{name}.png")


class Predict(HashedTask):
    """Kinematics and kinetics of a new trial (C3D, TRC or SMPL .npz) from a checkpoint:
    `<artifacts>/predictions/<trial>/<hash>/{kinematics,kinetics}.parquet` and plots."""

    identity = ()
    checkpoint = luigi.Parameter(description="a TrainModel checkpoint.pt")
    trial_file = luigi.Parameter(description="the trial: .c3d, .trc (+ _grf.mot) or .npz")
    mass_kg = luigi.FloatParameter(description="body mass (kg)")
    height_m = luigi.FloatParameter(description="stature (m)")
    model = luigi.Parameter(default="", description="optional subject .osim (recorded only: "
                                                    "inference needs no model)")

    def settings_hash(self) -> str:
        # The checkpoint's content, not only its path: a retrained run gives new predictions.
        ck = Path(self.checkpoint)
        payload = {**self.settings(), "checkpoint_sha": file_sha256(ck) if ck.exists() else ""}
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:10]

    def folder(self) -> Path:
        return (Path(paths().artifacts).resolve() / "predictions" / Path(self.trial_file).stem
                / self.settings_hash())

    def output(self):
        return {name: luigi.LocalTarget(str(self.folder() / f"{name}.parquet"))
                for name in ("kinematics", "kinetics")}

    def run(self):
        from models.predict import Predictor
        from pipeline.ingest import load_trial

        trial = load_trial(self.trial_file)
        predictor = Predictor.load(self.checkpoint)
        out = predictor.predict(trial.markers, {"mass_kg": self.mass_kg,
                                                "height_m": self.height_m,
                                                "model": self.model or None})
        folder = self.folder()
        folder.mkdir(parents=True, exist_ok=True)
        _plot(out, predictor.coordinate_names, folder, title=trial.name)
        write_json_atomic(folder / "prediction.json", {
            "checkpoint": str(Path(self.checkpoint).resolve()), "trial_file": self.trial_file,
            "mass_kg": self.mass_kg, "height_m": self.height_m, "model": self.model,
            "frames": len(trial.markers), "settings_hash": self.settings_hash()})
        provenance = {"checkpoint": str(self.checkpoint), "trial_file": self.trial_file}
        for name in ("kinematics", "kinetics"):  # each atomic; complete once both exist
            store.write_atomic(store.to_arrow(out[name], name, provenance),
                               Path(self.output()[name].path))
