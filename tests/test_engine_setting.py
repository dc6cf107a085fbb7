"""The engine setting of the ground-truth path: the same window through `track_trial` with
engine="casadi" is solved by collocation/ in its own process (the tree exported here, by the
opensim process) and comes back as the same tables, recorded with its engine."""
import json
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


def test_plate_tracking_weight_is_a_hashed_setting():
    """TrackMoco's contact_tracking_weight replaces the preset's (negative keeps it) and, like
    every setting, gives the solution a path of its own."""
    from tasks.ground_truth import TrackMoco

    default = TrackMoco(subject="S01", trial="walk_01")
    heavier = TrackMoco(subject="S01", trial="walk_01", contact_tracking_weight=0.05)
    off = TrackMoco(subject="S01", trial="walk_01", contact_tracking_weight=0.0)
    assert default._settings().contact_tracking_weight == 1e-2
    assert heavier._settings().contact_tracking_weight == 0.05
    assert off._settings().contact_tracking_weight == 0.0
    # What settings_hash() hashes for this task (the upstream hashes need the raw files).
    assert len({json.dumps(t.settings(), sort_keys=True) for t in (default, heavier, off)}) == 3


def test_casadi_only_settings_leave_moco_paths_alone():
    """The CasADi engine's formulation settings are hashed for that engine only: a Moco
    solution's artifact path is what it was before they existed."""
    from dataclasses import asdict

    from osim.moco_track import CASADI_ONLY
    from tasks.ground_truth import TrackMoco

    moco = TrackMoco(subject="S01", trial="walk_01").settings()["resolved"]
    casadi = TrackMoco(subject="S01", trial="walk_01", engine="casadi").settings()["resolved"]
    every = set(asdict(TrackSettings())) - {"timeout_s"}
    assert set(moco) == every - set(CASADI_ONLY)
    assert set(casadi) == every and casadi["scale_variables"] and casadi["friction_kink"] > 0
