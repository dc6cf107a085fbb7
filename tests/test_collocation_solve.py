"""The CasADi engine end to end, kept small: the built-in model standing still, a 0.3 s window,
a coarse mesh, arms and toes welded (held at their defaults in the full model's tree), exactly
as tests/test_moco_track.py poses it to Moco. `python -m collocation` runs in a subprocess
(this process imports opensim; DESIGN.md trap 2). Standing must be carried by the feet through
the contact spheres, the solution must agree with Moco's on the same window (issue 9's
thresholds: 1 deg, 3 N*m, 3 % body weight RMS), and a solve cut short must be reported as not
converged (exit 3)."""
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import WELD, check_standing_solution, standing_trial

from osim.moco_track import TrackSettings
from pipeline.opensim_files import read_sto

opensim = pytest.importorskip("opensim")

REPO = Path(__file__).resolve().parents[1]
MASS, HEIGHT = 70.0, 1.75


@pytest.fixture(scope="module")
def standing(tmp_path_factory):
    from osim.export_tree import write_tree

    root = tmp_path_factory.mktemp("colloc")
    model_path, _ = standing_trial(root, 0.3, HEIGHT, MASS)
    write_tree(model_path, root / "tree.json")
    return root, model_path


def _spec(root: Path, model_path: Path, name: str, guess: str | None = None,
          **overrides) -> dict:
    settings = replace(TrackSettings(), **{"mesh_interval": 0.1, "weld_joints": WELD,
                                           "filter_hz": 6.0, **overrides})
    spec = {"model": str(model_path), "coordinates": str(root / "ik.sto"), "t0": 0.0,
            "t1": 0.3, "workdir": str(root / name), "settings": asdict(settings),
            "tree": str(root / "tree.json"), "engine": "casadi"}
    return {**spec, "guess": guess} if guess else spec


def _solve(root: Path, model_path: Path, name: str, guess: str | None = None, **overrides):
    spec = _spec(root, model_path, name, guess, **overrides)
    spec_path = root / f"{name}.json"
    spec_path.write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "collocation", str(spec_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    result_path = Path(spec["workdir"]) / "result.json"
    assert result_path.exists(), done.stdout[-2000:] + done.stderr[-2000:]
    return done.returncode, json.loads(result_path.read_text()), Path(spec["workdir"])


@pytest.mark.slow
def test_standing_is_carried_by_the_feet(standing):
    code, result, workdir = _solve(*standing, "converged")
    assert code == 0 and result["success"], result
    assert result["engine"] == "casadi" and result["status"] == "Solve_Succeeded"
    # Moco's grid rule (osim/moco_track.py): 3 * 0.1 lies past 0.3 in floating point, so the
    # window ends on the last grid point inside it; midpoints are included in mesh_points.
    assert (result["solved_t0"], result["solved_t1"]) == (0.0, pytest.approx(0.2))
    assert result["mesh_points"] == 5
    kinematics, kinetics = check_standing_solution(workdir, MASS)
    # Standing still: the free moments and horizontal forces are small.
    assert np.abs(kinetics["ground_force_r_vx"]).max() < 0.05 * MASS * 9.80665
    assert "mtp_angle_r" not in kinematics and "elbow_flex_r" not in kinematics
    # Same columns as the Moco path (osim/extract.py) writes.
    assert list(kinetics.columns[-18:]) == [
        f"ground_{kind}_{s}_{c}" for s in ("r", "l")
        for kind, c in [("force", "vx"), ("force", "vy"), ("force", "vz"), ("force", "px"),
                        ("force", "py"), ("force", "pz")]] + [
        f"ground_torque_{s}_{a}" for s in ("r", "l") for a in "xyz"]


@pytest.mark.slow
def test_unconverged_solve_is_reported(standing):
    code, result, workdir = _solve(*standing, "cut_short", max_iterations=2)
    assert code == 3
    assert result["success"] is False and result["status"] == "Maximum_Iterations_Exceeded"
    assert result["iterations"] == 2 and result["engine"] == "casadi"
    assert not (workdir / "kinetics.sto").exists()


def _rms(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


@pytest.mark.slow
def test_agrees_with_moco(standing):
    from osim.moco_track import WindowSpec
    from osim.solve_process import run_window

    root, model_path = standing
    code, result, workdir = _solve(root, model_path, "agree")
    assert code == 0, result
    spec = _spec(root, model_path, "moco")
    spec.pop("tree"), spec.pop("engine")
    moco = run_window(WindowSpec(**spec), timeout_s=600)
    assert moco["success"], moco
    # Same grid, same cost: the objectives agree too (Moco's convergence tolerance is loose).
    assert (moco["mesh_points"], moco["solved_t1"]) == (result["mesh_points"],
                                                        pytest.approx(result["solved_t1"]))
    assert result["objective"] == pytest.approx(moco["objective"], rel=0.05)
    mk, ck = read_sto(Path(spec["workdir"]) / "kinematics.sto"), read_sto(workdir /
                                                                        "kinematics.sto")
    mt, ct = read_sto(Path(spec["workdir"]) / "kinetics.sto"), read_sto(workdir / "kinetics.sto")
    rotations = [c for c in mk.columns if not c.endswith(("_speed", "_accel"))
                 and not c.startswith("pelvis_t")]
    assert max(np.degrees(_rms(ck[c], mk[c])) for c in rotations) < 1.0
    torques = [c for c in mt.columns if c.endswith("_moment") and not c.startswith("pelvis")]
    assert max(_rms(ct[c], mt[c]) for c in torques) < 3.0
    weight = MASS * 9.80665
    for side in ("r", "l"):
        column = f"ground_force_{side}_vy"
        assert _rms(ct[column], mt[column]) / weight < 0.03

    # Started from Moco's solution (spec `guess`), the engine finds it an optimum of its own
    # NLP: the same problem, not only a similar answer.
    code, warm, warm_dir = _solve(root, model_path, "warm", guess=spec["workdir"])
    assert code == 0 and warm["guess"] == spec["workdir"], warm
    # (Moco stops at a loose tolerance, so its objective is known to about 1 %.)
    assert warm["objective"] == pytest.approx(moco["objective"], rel=0.02)
    wk = read_sto(warm_dir / "kinematics.sto")
    assert max(np.degrees(_rms(wk[c], mk[c])) for c in rotations) < 0.1


def test_unreadable_guess_is_refused(standing):
    root, model_path = standing
    spec = _spec(root, model_path, "bad_guess", guess=str(root / "nowhere"))
    (root / "bad_guess.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "collocation", str(root / "bad_guess.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "nowhere" in done.stderr
    assert not (root / "bad_guess" / "result.json").exists()


def test_spec_without_tree_is_refused(standing):
    root, model_path = standing
    spec = _spec(root, model_path, "no_tree")
    spec.pop("tree")
    (root / "no_tree.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, "-m", "collocation", str(root / "no_tree.json")],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no 'tree'" in done.stderr and "write_tree" in done.stderr
    assert not (root / "no_tree" / "result.json").exists()


def test_moco_grid_is_the_engines_grid(standing, monkeypatch):
    """Both engines lay n intervals of exactly mesh_interval (collocation.reference.mesh_window).
    MocoTrack alone would make ceil(duration / interval) of them, and in floating point
    (0.275 - 0.125) / 0.025 = 6.000000000000001: 7 intervals of 0.0214 s, a different NLP."""
    from osim.moco_track import WindowSpec, build_study

    root, model_path = standing
    monkeypatch.chdir(root)  # MocoTrack writes its tracked states into the working directory
    spec = {**_spec(root, model_path, "grid", mesh_interval=0.025), "t0": 0.125}
    spec.pop("tree"), spec.pop("engine")
    study, *_ = build_study(WindowSpec(**spec))
    guess = opensim.MocoCasADiSolver.safeDownCast(study.updSolver()).createGuess()
    times = np.array(guess.getTimeMat()).ravel()
    # 0.125 + 7 * 0.025 lies past 0.3: the window ends at 0.275 (6 intervals), midpoints
    # included.
    assert len(times) == 13 and times[-1] == pytest.approx(0.275)
    assert np.allclose(np.diff(times), 0.0125)
