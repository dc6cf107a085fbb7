"""Inference from a checkpoint: reload gives identical predictions, output tables follow the
warehouse's names and units, any trial length works, and the Predict task writes its files."""
import json

import luigi
import numpy as np
import pandas as pd
import pytest
import torch
from fake_cohort import cached_warehouse

from models.config import make_config
from models.data import load_cohort
from models.predict import Predictor
from models.training import fit
from pipeline.errors import ModelError
from pipeline.opensim_files import write_trc
from warehouse import store


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root, bodies = cached_warehouse(tmp_path_factory.mktemp("predict"))
    cohort = load_cohort(root)
    ck = tmp_path_factory.mktemp("ck") / "checkpoint.pt"
    fit(make_config("tiny", epochs=1, losses=["lambda", "tau"]), cohort, bodies, ck)
    return root, cohort, ck


def _markers(root, subject="P01"):
    m = store.read_table(root, "markers", [subject])
    return m.drop(columns=["subject", "trial"]).sort_values("time").reset_index(drop=True)


def test_reloaded_checkpoint_predicts_identically(trained):
    root, cohort, ck = trained
    markers = _markers(root)
    a = Predictor.load(ck).predict(markers, {"mass_kg": 65.0, "height_m": 1.7})
    b = Predictor.load(ck).predict(markers, {"mass_kg": 65.0, "height_m": 1.7})
    for name in ("kinematics", "kinetics"):
        pd.testing.assert_frame_equal(a[name], b[name], check_exact=True)
    # ...and equal to the network as it was at the end of training (weights in the file).
    state = torch.load(ck, weights_only=False)
    p = Predictor.load(ck)
    for k, v in state["model"].items():
        assert torch.equal(p.net.state_dict()[k], v)
    assert p.split == state["split"] and p.coordinate_names == cohort.coordinate_names


def test_prediction_tables_follow_the_warehouse(trained):
    root, cohort, ck = trained
    p = Predictor.load(ck)
    markers = _markers(root)
    out = p.predict(markers, {"mass_kg": 65.0, "height_m": 1.7})
    kin, kinetics = out["kinematics"], out["kinetics"]
    wh_kin = store.read_table(root, "kinematics", ["P01"]).drop(columns=["subject", "trial"])
    wh_kt = store.read_table(root, "kinetics", ["P01"]).drop(columns=["subject", "trial"])
    assert list(kin.columns) == list(wh_kin.columns)
    assert set(wh_kt.columns) == set(kinetics.columns)
    assert np.array_equal(kin["time"], markers["time"]) and len(kinetics) == len(markers)
    assert np.isfinite(kin.drop(columns="time").to_numpy()).all()
    # Speeds are the derivative of the predicted angles; forces scale with body mass.
    c = cohort.coordinate_names[6]
    assert np.allclose(kin[f"{c}_speed"], np.gradient(kin[c], kin["time"]))
    heavy = p.predict(markers, {"mass_kg": 130.0, "height_m": 1.7})["kinetics"]
    assert np.allclose(heavy["ground_force_r_vy"], 2 * kinetics["ground_force_r_vy"],
                       rtol=1e-5)
    # A markers frame with time as the index (read_leaf's form) gives the same answer.
    same = p.predict(markers.set_index("time"), {"mass_kg": 65.0})["kinematics"]
    assert np.allclose(same[c], kin[c])


@pytest.mark.parametrize("frames", [1, 5, 23])
def test_any_trial_length(trained, frames):
    root, _, ck = trained
    out = Predictor.load(ck).predict(_markers(root).iloc[:frames], {"mass_kg": 70.0})
    assert len(out["kinematics"]) == frames and len(out["kinetics"]) == frames
    assert np.isfinite(out["kinetics"]["ground_force_l_vy"]).all()


def test_bad_input_is_a_model_error(trained, tmp_path):
    root, _, ck = trained
    p = Predictor.load(ck)
    with pytest.raises(ModelError, match="mass_kg"):
        p.predict(_markers(root), {"height_m": 1.7})
    with pytest.raises(ModelError, match="markers"):
        p.predict(pd.DataFrame({"time": [0.0, 0.01], "FOO_x": [0, 0]}), {"mass_kg": 70.0})
    with pytest.raises(ModelError, match="checkpoint not found"):
        Predictor.load(tmp_path / "missing.pt")


def test_predict_task_writes_tables_and_plots(trained, tmp_path):
    from tasks.train import Predict

    root, _, ck = trained
    markers = _markers(root).set_index("time")
    trc = tmp_path / "walk_new.trc"
    write_trc(trc, markers, units="m")
    config = luigi.configuration.get_config()
    old = config.get("paths", "artifacts", None)
    config.set("paths", "artifacts", str(tmp_path / "artifacts"))
    try:
        task = Predict(checkpoint=str(ck), trial_file=str(trc), mass_kg=65.0, height_m=1.7)
        assert luigi.build([task], local_scheduler=True, log_level="ERROR")
        folder = task.folder()
    finally:
        config.set("paths", "artifacts", old) if old else config.remove_option("paths",
                                                                              "artifacts")
    assert folder.parent.name == "walk_new" and folder.parent.parent.name == "predictions"
    kin, _ = store.read_leaf(folder / "kinematics.parquet")
    assert len(kin) == len(markers)
    assert store.units_of(folder / "kinetics.parquet")["knee_angle_r_moment"] == "N*m"
    for png in ("q.png", "tau.png", "grf.png"):
        assert (folder / png).stat().st_size > 1000
    assert json.loads((folder / "prediction.json").read_text())["frames"] == len(markers)
