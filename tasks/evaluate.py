"""Evaluation, the paper's ablations and the whole chain.

    RunAll(run_name)                    BuildDataset, then Evaluate(run_name)
    Evaluate(run_name, <TrainModel's parameters>)
      └─ TrainModel(...)                checkpoint.pt + metrics.parquet beside run.json
    Ablations(run_name, seed)           AblateLosses (Table 3) + AblateOutput (Table 4): an
                                        Evaluate (and TrainModel) per row

Reports live in `<artifacts>/reports/<report>/` (report = the run name unless given):
metrics.json (written last), metrics.parquet, curves.parquet, index.html and its PNGs. A
metrics.json that names another training run than the one Evaluate now requires (a changed
setting) does not count as done: the evaluation runs again and replaces it.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import luigi
import pandas as pd
from luigi.util import inherits

from .base import paths, write_json_atomic
from .ground_truth import BuildDataset
from .train import TrainModel

# The paper's Table 3 rows (loss switches; the first is the kinematics-only baseline) and
# Table 4 rows (frames out of the FD layer per step).
LOSS_ROWS = ((), ("lambda",), ("lambda", "tau"), ("lambda", "tau", "q"),
             ("lambda", "tau", "q", "J"))
OUTPUT_ROWS = ("single", "multi")
TABLE_COLUMNS = {"mae_grf_bw": "MAE GRF (BW)", "mae_torque_nm_per_kg": "MAE torque (N·m/kg)",
                 "mae_angle_deg": "MAE angle (deg)", "mpblpe_mm": "MPBLPE (mm)",
                 "vel_err_mm_per_frame": "Vel (mm/frame)",
                 "accel_err_mm_per_frame2": "Accel (mm/frame²)"}


def reports_root() -> Path:
    return Path(paths().artifacts).resolve() / "reports"


@inherits(TrainModel)
class Evaluate(luigi.Task):
    """The paper's metrics of a trained run on its test subjects, and the HTML report. Takes
    TrainModel's parameters (`luigi.util.inherits`) and passes them through."""

    # inherits() skips a name the class already has, and every Task has output(): this one is
    # passed through by hand (see OutputModeParameter).
    output = TrainModel.output
    report = luigi.Parameter(default="", description="report folder under <artifacts>/reports; "
                             "empty = the run name")

    def requires(self):
        # Not self.clone(): it reads parameters as attributes, and `output` reads as a method.
        names = [name for name, _ in TrainModel.get_params()]
        return TrainModel(**{n: self.param_kwargs[n] for n in names})

    def report_dir(self) -> Path:
        return reports_root() / (self.report or self.run_name)

    def output_target(self):
        return luigi.LocalTarget(self.report_dir() / "metrics.json")

    def complete(self) -> bool:
        path = Path(self.output().path)
        if not path.exists():
            return False
        try:
            recorded = json.loads(path.read_text()).get("train_run")
        except (OSError, ValueError):
            return False
        return recorded == str(Path(self.requires().output().path).resolve())

    def run(self):
        from models.evaluation import evaluate_predictor, write_tables
        from models.predict import Predictor
        from models.report import render

        train_run = Path(self.input().path).resolve()
        checkpoint = train_run.parent / "checkpoint.pt"
        self.set_status_message(f"evaluating {checkpoint}")
        predictor = Predictor.load(checkpoint)
        evaluation = evaluate_predictor(predictor, paths().warehouse)
        out = self.report_dir()
        out.mkdir(parents=True, exist_ok=True)
        write_tables(evaluation, out)
        summary = {**evaluation.summary, "run": self.run_name, "split": predictor.split,
                   "checkpoint": str(checkpoint), "train_run": str(train_run),
                   "training_metrics": str(train_run.parent / "metrics.parquet"),
                   "settings": self.to_str_params(only_significant=True)}
        render(out, summary)
        write_json_atomic(out / "metrics.json", summary)


class _AblationTable(luigi.Task):
    """One ablation table: each row a TrainModel + Evaluate on the same data, seed and preset;
    written as CSV and Markdown beside the run's report, which is re-rendered with it when it
    exists."""

    run_name = luigi.Parameter(description="the run whose report gets the table")
    seed = luigi.IntParameter(default=0, description="as TrainModel, for every row")
    preset = luigi.ChoiceParameter(default="default", choices=["default", "paper", "tiny"],
                                   description="as TrainModel, for every row")
    epochs = luigi.IntParameter(default=0, description="as TrainModel, for every row")
    table = ""  # file stem: ablations_<table>.csv

    def rows(self) -> list[tuple[dict, Evaluate]]:
        raise NotImplementedError

    def row(self, losses, output: str) -> Evaluate:
        tag = "-".join(losses) or "none"
        return Evaluate(run_name=self.run_name, seed=self.seed, preset=self.preset,
                        epochs=self.epochs, losses=list(losses), output=output,
                        report=f"{self.run_name}/ablation_losses-{tag}_output-{output}")

    def requires(self):
        return [evaluation for _, evaluation in self.rows()]

    def output(self):
        return luigi.LocalTarget(reports_root() / self.run_name / f"ablations_{self.table}.csv")

    def complete(self) -> bool:
        # A row evaluated again (new settings, new data) makes the table stale.
        return super().complete() and all(t.complete() for t in self.requires())

    def run(self):
        from models.report import markdown_table, write_report

        labels = [label for label, _ in self.rows()]
        summaries = [json.loads(Path(t.path).read_text()) for t in self.input()]
        table = ablation_table(labels, summaries)
        csv = Path(self.output().path)
        _write_text_atomic(csv.with_suffix(".md"), markdown_table(table))
        _write_text_atomic(csv, table.to_csv(index=False))
        if (csv.parent / "metrics.json").exists():
            write_report(csv.parent)


class AblateLosses(_AblationTable):
    """Paper Table 3: the loss terms switched on one by one (single-frame output)."""

    table = "losses"

    def rows(self):
        return [({"losses": ", ".join(losses) or "none (kinematics only)"},
                 self.row(losses, "single")) for losses in LOSS_ROWS]


class AblateOutput(_AblationTable):
    """Paper Table 4: single- against multi-frame output of the FD layer (all losses)."""

    table = "output"

    def rows(self):
        return [({"output": f"{o}-frame out"}, self.row(LOSS_ROWS[-1], o)) for o in OUTPUT_ROWS]


class Ablations(luigi.WrapperTask):
    """Both ablation tables for a run (six trainings besides the run's own; the full-loss
    single-frame row is the run's own training). One table still comes out if the other's
    rows fail."""

    run_name = luigi.Parameter(description="the run whose report gets the tables")
    seed = luigi.IntParameter(default=0, description="as TrainModel, for every row")
    preset = luigi.ChoiceParameter(default="default", choices=["default", "paper", "tiny"],
                                   description="as TrainModel, for every row")
    epochs = luigi.IntParameter(default=0, description="as TrainModel, for every row")

    def requires(self):
        return [AblateLosses(**self.param_kwargs), AblateOutput(**self.param_kwargs)]


def ablation_table(labels: list[dict], summaries: list[dict]) -> pd.DataFrame:
    """One row per ablation: its label columns, then the overall metrics of its metrics.json
    (paper order: GRF, torque, angle, MPBLPE; then velocity and acceleration)."""
    rows = [{**label, **{name: s["overall"].get(key) for key, name in TABLE_COLUMNS.items()}}
            for label, s in zip(labels, summaries, strict=True)]
    return pd.DataFrame(rows)


class RunAll(luigi.Task):
    """BuildDataset -> TrainModel -> Evaluate (-> Ablations when asked): ground truth for the
    raw folder, a trained run, its report. Done when the dataset is and the run's evaluation
    (and tables) are current."""

    run_name = luigi.Parameter(default="default", description="run and report name")
    preset = luigi.ChoiceParameter(default="default", choices=["default", "paper", "tiny"],
                                   description="training preset (models/config.py)")
    ablations = luigi.BoolParameter(default=False, description="also train and evaluate the "
                                    "Table 3 and 4 rows (six more trainings)")

    def requires(self):
        return BuildDataset()

    def downstream(self) -> list[luigi.Task]:
        tasks = [Evaluate(run_name=self.run_name, preset=self.preset)]
        if self.ablations:
            tasks.append(Ablations(run_name=self.run_name, preset=self.preset))
        return tasks

    def output(self):
        return self.downstream()[0].output()

    def complete(self) -> bool:
        return self.requires().complete() and all(t.complete() for t in self.downstream())

    def run(self):
        # TrainModel reads the warehouse as it is: start it only once the dataset is built.
        yield self.downstream()

    def report_path(self) -> Path:
        return self.downstream()[0].report_dir() / "index.html"


def _write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f"_{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    staging.write_text(text, encoding="utf-8")
    os.replace(staging, path)
