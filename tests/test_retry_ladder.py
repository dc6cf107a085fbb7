"""A Moco window that cannot converge goes through the whole retry ladder (more iterations,
relaxed tolerances, two shorter halves), every attempt kept in its own folder, and ends as a
SolveError: nothing is stitched or written. Forced for real and kept cheap: the built-in model
standing still, a coarse mesh, one IPOPT iteration and tolerances no solver can meet in four."""
from dataclasses import replace

import pytest
from conftest import WELD, standing_trial

from osim.moco_track import TrackSettings
from pipeline.errors import SolveError

opensim = pytest.importorskip("opensim")


@pytest.mark.slow
def test_non_convergence_climbs_the_ladder_and_is_never_ground_truth(tmp_path):
    from osim.ground_truth import track_trial

    model_path, ik = standing_trial(tmp_path, 0.6)
    settings = replace(TrackSettings(), mesh_interval=0.1, weld_joints=WELD, max_iterations=1,
                       convergence_tolerance=1e-12, constraint_tolerance=1e-12)
    workdir = tmp_path / "track"
    workdir.mkdir()
    with pytest.raises(SolveError) as failure:
        track_trial(model=model_path, ik=ik, grf_leaf=None, settings=settings,
                    mass_kg=70.0, height_m=1.75, workdir=workdir, trial="stand")
    message = str(failure.value)
    assert "after 5 attempts" in message
    for rung in ("as configured", "more_iterations", "relaxed_tolerance", "half_0", "half_1"):
        assert rung in message
    # The message names the engine and the status of each final rung that failed.
    assert message.startswith("[moco] Moco window 0.00-0.60 s")
    assert "half_0: Maximum_Iterations_Exceeded" in message
    window = workdir / "window_0"
    for folder in ("more_iterations", "relaxed_tolerance", "half_0", "half_1"):
        spec = (window / folder / "spec.json").read_text()
        assert '"max_iterations": 4' in spec
    assert '"t1": 0.4' in (window / "half_0" / "spec.json").read_text()
    assert not (workdir / "kinematics.parquet").exists()
    assert not (workdir / "kinetics.parquet").exists()
