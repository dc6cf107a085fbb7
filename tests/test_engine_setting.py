"""The engine setting of the ground-truth path: the same window through `track_trial` with
engine="casadi" is solved by collocation/ in its own process (the tree exported here, by the
opensim process) and comes back as the same tables, recorded with its engine."""
from dataclasses import replace

import pandas as pd
import pytest
from conftest import WELD, standing_trial

from osim.moco_track import TrackSettings

opensim = pytest.importorskip("opensim")


@pytest.mark.slow
def test_standing_through_the_casadi_engine(tmp_path):
    from osim.ground_truth import track_trial

    model_path, ik = standing_trial(tmp_path, 0.4)
    settings = replace(TrackSettings(), mesh_interval=0.05, weld_joints=WELD, engine="casadi")
    workdir = tmp_path / "track"
    workdir.mkdir()
    summary = track_trial(model=model_path, ik=ik, grf_leaf=None,
                          settings=settings, mass_kg=70.0, height_m=1.75, workdir=workdir,
                          trial="stand")
    assert summary["engine"] == "casadi"
    assert summary["windows"][0]["status"] == "Solve_Succeeded"
    assert (workdir / "window_0" / "tree.json").exists()
    assert abs(summary["quality"]["mean_vgrf_bw"] - 1.0) < 0.02
    assert summary["quality"]["residual_force_rms_bw"] < 0.01
    kinetics = pd.read_parquet(workdir / "kinetics.parquet")
    assert {"knee_angle_r_moment", "ground_force_r_vy", "ground_force_l_px"} <= set(kinetics)
