"""The engine setting of the ground-truth path: the same window through `track_trial` with
engine="casadi" is solved by collocation/ in its own process (the tree exported here, by the
opensim process) and comes back as the same tables, recorded with its engine."""
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from osim.moco_track import TrackSettings
from pipeline.opensim_files import write_sto

opensim = pytest.importorskip("opensim")

WELD = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l")


@pytest.mark.slow
def test_standing_through_the_casadi_engine(tmp_path):
    from osim.builtin_model import build_model, write_model
    from osim.ground_truth import track_trial

    model = build_model(1.75, 70.0, "F")
    model_path = write_model(model, tmp_path / "model.osim")
    state = model.initSystem()
    times = np.linspace(0, 0.4, 41)
    table = pd.DataFrame({c.getName(): np.full(len(times), c.getValue(state))
                          for c in model.getCoordinateSet()}, index=pd.Index(times, name="time"))
    write_sto(tmp_path / "ik.sto", table)
    settings = replace(TrackSettings(), mesh_interval=0.05, weld_joints=WELD, engine="casadi")
    workdir = tmp_path / "track"
    workdir.mkdir()
    summary = track_trial(model=model_path, ik=tmp_path / "ik.sto", grf_leaf=None,
                          settings=settings, mass_kg=70.0, height_m=1.75, workdir=workdir,
                          trial="stand")
    assert summary["engine"] == "casadi"
    assert summary["windows"][0]["status"] == "Solve_Succeeded"
    assert (workdir / "window_0" / "tree.json").exists()
    assert abs(summary["quality"]["mean_vgrf_bw"] - 1.0) < 0.02
    assert summary["quality"]["residual_force_rms_bw"] < 0.01
    kinetics = pd.read_parquet(workdir / "kinetics.parquet")
    assert {"knee_angle_r_moment", "ground_force_r_vy", "ground_force_l_px"} <= set(kinetics)
