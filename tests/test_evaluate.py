"""Evaluation end to end on a tiny warehouse written here (the built-in model, sinusoidal
motion, made-up kinetics), with a fake predictor that returns the reference plus known errors;
then the report: HTML whose PNGs exist, and the metrics.json keys DESIGN.md names."""
import json
import math
import re
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import luigi_paths_set

from models.dynamics import Multibody
from models.evaluation import evaluate_predictor, write_tables
from models.metrics import METRIC_KEYS
from models.report import markdown_table, render, write_report
from osim.builtin_model import build_model, write_model
from warehouse import store

TRACKED = ["pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz",
           "hip_flexion_r", "hip_adduction_r", "hip_rotation_r", "knee_angle_r", "ankle_angle_r",
           "subtalar_angle_r", "hip_flexion_l", "hip_adduction_l", "hip_rotation_l",
           "knee_angle_l", "ankle_angle_l", "subtalar_angle_l", "lumbar_extension",
           "lumbar_bending", "lumbar_rotation"]
TRANSLATIONS = ["pelvis_tx", "pelvis_ty", "pelvis_tz"]
ROTATIONS = [c for c in TRACKED if c not in TRANSLATIONS]
JOINTS = [c for c in ROTATIONS if not c.startswith("pelvis_")]
MASS = 70.0
# (subject, trial, frames): trial lengths differ so the fake predictor can tell them apart.
TRIALS = [("S01", "squat_short_01", 30), ("S01", "walk_short_01", 40),
          ("S02", "squat_short_01", 35), ("S03", "squat_short_01", 25),
          ("S04", "squat_short_01", 28)]
SUBJECTS = ("S01", "S02", "S03", "S04")


def _reference(body: Multibody, frames: int, phase: float):
    """Kinematics (sinusoids about a standing pose, exact speeds and accelerations), kinetics
    (inverse dynamics with made-up GRF) and markers (the model's, by FK) of one trial."""
    t = np.arange(frames) / 100.0
    names = body.coordinate_names
    q = body.default_coordinates(frames).numpy().astype(float)
    qd, qdd = np.zeros_like(q), np.zeros_like(q)
    for k, c in enumerate(TRACKED):
        i, w = names.index(c), 2 * math.pi * (0.5 + 0.1 * k)
        amp = 0.05 if c in TRANSLATIONS else 0.2
        q[:, i] += ({"pelvis_ty": 0.95}.get(c, 0.0) + amp * np.sin(w * t + phase))
        qd[:, i] = amp * w * np.cos(w * t + phase)
        qdd[:, i] = -amp * w**2 * np.sin(w * t + phase)
    with torch.no_grad():
        as_t = partial(torch.as_tensor, dtype=torch.float64)
        tau = body.inverse_dynamics(as_t(q), as_t(qd), as_t(qdd)).numpy()
        markers = body.marker_positions(as_t(q)).numpy()
    cols = [names.index(c) for c in TRACKED]
    kin = pd.DataFrame(np.hstack([q[:, cols], qd[:, cols], qdd[:, cols]]),
                       columns=[*TRACKED, *[f"{c}_speed" for c in TRACKED],
                                *[f"{c}_accel" for c in TRACKED]])
    kin.insert(0, "time", t)
    kinetics = pd.DataFrame({(f"{c}_force" if c in TRANSLATIONS else f"{c}_moment"): tau[:, i]
                             for c, i in zip(TRACKED, cols)})
    kinetics.insert(0, "time", t)
    for side in "rl":
        for axis, scale in zip("xyz", (40.0, 340.0, 15.0)):
            kinetics[f"ground_force_{side}_v{axis}"] = scale * (1 + np.sin(3 * t + phase))
            kinetics[f"ground_force_{side}_p{axis}"] = {"x": 0.1, "y": 0.0, "z": 0.1}[axis]
            kinetics[f"ground_torque_{side}_{axis}"] = 0.0
    mk = pd.DataFrame(markers.reshape(frames, -1), columns=[
        f"{m}_{a}" for m in body.marker_names for a in "xyz"])
    mk.insert(0, "time", t)
    return kin, kinetics, mk


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    root = tmp_path_factory.mktemp("warehouse")
    model = write_model(build_model(1.75, MASS, "M", name="test"), root / "model.osim")
    body = Multibody.from_osim(model, torch.float64)
    pd.DataFrame([{"subject": s, "mass_kg": MASS, "height_m": 1.75, "sex": "M",
                   "model": str(model)} for s in SUBJECTS]).to_parquet(root / "subjects.parquet")
    rows = []
    for k, (subject, trial, frames) in enumerate(TRIALS):
        kin, kinetics, markers = _reference(body, frames, phase=0.3 * k)
        for table, df in (("kinematics", kin), ("kinetics", kinetics), ("markers", markers)):
            store.write_leaf(root, table, subject, trial, df)
        # The walking trial's activity is left blank, as the catalog sometimes has it: the
        # evaluation falls back on the trial name.
        rows.append({"subject": subject, "trial": trial, "ground_truth": True,
                     "activity": None if trial.startswith("walk") else "squat"})
    pd.DataFrame(rows).to_parquet(root / "trials.parquet")
    return root


class FakePredictor:
    """The reference motion and kinetics, plus `knee` rad on knee_angle_r and `moment` N*m on
    its moment; stands in for models.predict.Predictor (same attributes and predict())."""

    coordinate_names = TRACKED

    def __init__(self, root, test=("S01", "S02"), knee=0.0, moment=0.0):
        self.split = {"train": ["S03"], "val": [], "test": list(test)}
        self.root, self.knee, self.moment = root, knee, moment

    def predict(self, markers: pd.DataFrame, subject: dict) -> dict[str, pd.DataFrame]:
        assert {"time", "RASI_x", "LHEE_z"} <= set(markers.columns) and "mass_kg" in subject
        trial = next(t for s, t, n in TRIALS if s == subject["subject"] and n == len(markers))
        kin, _ = store.read_leaf(store.leaf_path(self.root, "kinematics", subject["subject"],
                                                 trial))
        kinetics, _ = store.read_leaf(store.leaf_path(self.root, "kinetics",
                                                      subject["subject"], trial))
        kin["knee_angle_r"] += self.knee
        kinetics["knee_angle_r_moment"] += self.moment
        return {"kinematics": kin.reset_index(), "kinetics": kinetics.reset_index()}


def test_identical_predictions_score_zero_everywhere(warehouse):
    evaluation = evaluate_predictor(FakePredictor(warehouse), warehouse)
    summary = evaluation.summary
    assert sorted(evaluation.per_trial["trial"]) == ["squat_short_01", "squat_short_01",
                                                     "walk_short_01"]
    assert set(summary["by_activity"]) == {"squat", "walking"}
    assert set(summary["by_subject"]) == {"S01", "S02"}
    for block in [summary["overall"], *summary["by_activity"].values(),
                  *summary["by_subject"].values()]:
        for key in METRIC_KEYS:
            assert block[key] == pytest.approx(0.0, abs=1e-9), key
    assert summary["overall"]["frames"] == 30 + 40 + 35
    assert summary["test_subjects_in_training"] == []


def test_known_errors_come_out_exactly(warehouse):
    evaluation = evaluate_predictor(FakePredictor(warehouse, knee=0.1, moment=7.0), warehouse)
    overall = evaluation.summary["overall"]
    # One of 18 rotational coordinates off by 0.1 rad; translations are not angles.
    assert overall["mae_angle_deg"] == pytest.approx(math.degrees(0.1) / 18, rel=1e-9)
    # One of 15 joint moments off by 7 N*m of a 70 kg subject; pelvis residuals are excluded.
    assert overall["mae_torque_nm_per_kg"] == pytest.approx(0.1 / 15, rel=1e-9)
    assert overall["mae_grf_bw"] == 0.0
    # A constant knee error moves the shank landmarks but not their frame-to-frame motion much.
    assert overall["mpblpe_mm"] > 5.0
    assert overall["vel_err_mm_per_frame"] < 0.05 * overall["mpblpe_mm"]
    by_coord = evaluation.summary["by_coordinate"]
    assert by_coord["angle_deg"]["knee_angle_r"] == pytest.approx(math.degrees(0.1))
    assert by_coord["angle_deg"]["hip_flexion_r"] == pytest.approx(0.0, abs=1e-9)
    assert "pelvis_tx" not in by_coord["angle_deg"] and "pelvis_tilt" not in \
        by_coord["torque_nm_per_kg"]
    assert by_coord["torque_nm_per_kg"]["knee_angle_r"] == pytest.approx(0.1)


def test_explicit_subjects_and_clear_errors(warehouse):
    only = evaluate_predictor(FakePredictor(warehouse), warehouse, subjects=["S03"])
    assert list(only.per_trial["subject"]) == ["S03"]
    assert only.summary["test_subjects_in_training"] == ["S03"]  # the fake trained on S03
    with pytest.raises(Exception, match="no test subjects"):
        evaluate_predictor(FakePredictor(warehouse, test=()), warehouse)
    with pytest.raises(Exception, match="not in subjects.parquet"):
        evaluate_predictor(FakePredictor(warehouse, test=("S99",)), warehouse)


def test_report_and_metrics_json(warehouse, tmp_path):
    evaluation = evaluate_predictor(FakePredictor(warehouse, knee=0.05, moment=3.0), warehouse)
    training = pd.DataFrame({"epoch": [1, 2, 3, 1, 2, 3], "phase": ["gt_embed"] * 2
                             + ["pred_embed"] + ["gt_embed"] * 2 + ["pred_embed"],
                             "split": ["train"] * 3 + ["val"] * 3,
                             "loss": [3.0, 2.0, 1.5, 3.2, 2.4, 1.9],
                             "loss_tau": [1.0, 0.5, 0.4, 1.1, 0.6, 0.5],
                             "loss_q": [0.0] * 6})
    training.to_parquet(tmp_path / "train_metrics.parquet")
    write_tables(evaluation, tmp_path)
    summary = {**evaluation.summary, "run": "unit", "training_metrics":
               str(tmp_path / "train_metrics.parquet")}
    page = render(tmp_path, summary).read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    # GRF and moments of each activity's representative trial, coordinates, training.
    assert len(images) == 2 * 2 + 2
    for name in images:
        assert (tmp_path / name).stat().st_size > 1000
    assert "Loss ablation" not in page and "also trained on" not in page
    (tmp_path / "metrics.json").write_text(json.dumps(summary))
    pd.DataFrame({"losses": ["none", "lambda"], "MAE GRF (BW)": [np.nan, 0.1]}).to_csv(
        tmp_path / "ablations_losses.csv", index=False)
    assert "Loss ablation" in write_report(tmp_path).read_text()
    (tmp_path / "metrics.json").write_text(json.dumps({**summary,
                                                       "test_subjects_in_training": ["S01"]}))
    assert "S01 were also trained on" in write_report(tmp_path).read_text()
    per_trial = pd.read_parquet(tmp_path / "metrics.parquet")
    assert len(per_trial) == 3 and set(METRIC_KEYS) <= set(per_trial.columns)


def test_markdown_table():
    text = markdown_table(pd.DataFrame({"losses": ["none", "λ"], "err": [np.nan, 0.123456]}))
    assert text.splitlines() == ["| losses | err |", "|---|---|", "| none | – |",
                                 "| λ | 0.1235 |"]


@pytest.fixture
def luigi_paths(warehouse, tmp_path):
    """[paths] at the test warehouse, an empty raw folder (BuildDataset has nothing left to do)
    and a fresh artifacts folder; restored afterwards."""
    (tmp_path / "raw").mkdir()
    with luigi_paths_set(raw=tmp_path / "raw", warehouse=warehouse,
                         artifacts=tmp_path / "artifacts"):
        yield tmp_path / "artifacts"


def test_run_all_trains_tiny_evaluates_and_reports(luigi_paths):
    """RunAll -> Evaluate -> TrainModel (tiny preset) for real, through Luigi."""
    import luigi

    from tasks.evaluate import Evaluate, RunAll

    task = RunAll(run_name="unit", preset="tiny")
    result = luigi.build([task], local_scheduler=True, log_level="WARNING",
                         detailed_summary=True)
    assert result.status.name == "SUCCESS", result.summary_text
    report = luigi_paths / "reports" / "unit"
    assert task.report_path() == report / "index.html" and task.complete()
    summary = json.loads((report / "metrics.json").read_text())
    assert summary["test_subjects"] == summary["split"]["test"]
    assert Path(summary["checkpoint"]).exists()
    for block in [summary["overall"], *summary["by_activity"].values()]:
        for key in METRIC_KEYS:
            assert np.isfinite(block[key]) and block[key] >= 0, key
    page = (report / "index.html").read_text()
    images = re.findall(r'<img src="([^"]+)"', page)
    assert "training_curves.png" in images
    assert all((report / name).stat().st_size > 1000 for name in images)
    # Another seed is another training run: this report is not its evaluation.
    assert not Evaluate(run_name="unit", preset="tiny", seed=1).complete()


def test_ablation_rows_and_tables(luigi_paths):
    from tasks.evaluate import Ablations, Evaluate

    losses_table, output_table = Ablations(run_name="abl", preset="tiny").requires()
    loss_rows, output_rows = losses_table.requires(), output_table.requires()
    assert [list(r.losses) for r in loss_rows] == [
        [], ["lambda"], ["lambda", "tau"], ["lambda", "tau", "q"], ["lambda", "tau", "q", "J"]]
    assert [r.param_kwargs["output"] for r in output_rows] == ["single", "multi"]
    assert loss_rows[-1] == output_rows[0]  # one task: Luigi runs it once
    # The full single-frame row reuses the run's own training; the multi-frame row does not.
    main = Evaluate(run_name="abl", preset="tiny").requires().output().path
    assert loss_rows[-1].requires().output().path == main
    assert output_rows[1].requires().output().path != main
    # Tables from made-up row results, each naming the training its row requires.
    for k, row in enumerate(loss_rows + output_rows[1:]):
        Path(row.output().path).parent.mkdir(parents=True, exist_ok=True)
        Path(row.output().path).write_text(json.dumps({
            "overall": {key: 0.1 * (k + 1) for key in METRIC_KEYS},
            "train_run": str(Path(row.requires().output().path).resolve())}))
    losses_table.run()
    output_table.run()
    assert losses_table.complete() and output_table.complete()
    # A row whose evaluation is not current makes its table not current.
    Path(output_rows[1].output().path).write_text(json.dumps({"overall": {}}))
    assert losses_table.complete() and not output_table.complete()
    losses = pd.read_csv(luigi_paths / "reports" / "abl" / "ablations_losses.csv")
    assert list(losses["losses"]) == ["none (kinematics only)", "lambda", "lambda, tau",
                                      "lambda, tau, q", "lambda, tau, q, J"]
    np.testing.assert_allclose(losses["MAE torque (N·m/kg)"], [0.1, 0.2, 0.3, 0.4, 0.5])
    output = pd.read_csv(luigi_paths / "reports" / "abl" / "ablations_output.csv")
    np.testing.assert_allclose(output["MAE angle (deg)"], [0.5, 0.6])
    markdown = (luigi_paths / "reports" / "abl" / "ablations_output.md").read_text()
    assert markdown.splitlines()[2].startswith("| single-frame out | 0.5 |")
