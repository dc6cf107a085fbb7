"""The CasADi engine's second rung: a window that did not converge is solved again with a smoother
friction (every contact sphere's transition velocity at SMOOTHED_FRICTION), then as configured
from that solution. Only the last solve counts as ground truth: it is the model's own problem.
The ladder's order is checked with a recording stand-in for the solver process (cheap); the
spec key that smooths the friction is checked on the engine's own model setup (subprocess:
this process imports opensim, DESIGN.md trap 2)."""
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
from conftest import standing_casadi_spec

import osim.ground_truth as ground_truth
from osim.moco_track import TrackSettings, WindowSpec

REPO = Path(__file__).resolve().parents[1]


def _ladder(monkeypatch, tmp_path, engine: str, succeeds) -> tuple[list[dict], list[tuple]]:
    """solve_with_retries with a stand-in solver: `succeeds(folder name, options)` decides."""
    calls = []

    def fake_run_window(spec, timeout_s, engine_options=None):
        options = dict(engine_options or {})
        calls.append((Path(spec.workdir).relative_to(tmp_path).as_posix(), options,
                      spec.settings["max_iterations"]))
        ok = succeeds(calls[-1][0], options)
        return {"success": ok, "status": "Solve_Succeeded" if ok else "Maximum_Iterations_Exceeded",
                "iterations": 1, "t0": spec.t0, "t1": spec.t1}

    monkeypatch.setattr(ground_truth, "run_window", fake_run_window)
    settings = replace(TrackSettings(), engine=engine)
    spec = WindowSpec(model="m.osim", coordinates="ik.sto", t0=0.0, t1=1.0,
                      workdir=str(tmp_path / "window_0"), settings=asdict(settings))
    return ground_truth.solve_with_retries(spec, settings), calls


def test_a_cycling_casadi_window_is_continued_from_smoother_friction(monkeypatch, tmp_path):
    attempts, calls = _ladder(monkeypatch, tmp_path, "casadi",
                              lambda folder, options: folder != "window_0")
    smooth = str(tmp_path / "window_0" / "smoothed_friction" / "smooth")
    assert calls == [
        ("window_0", {}, 500),
        ("window_0/smoothed_friction/smooth",
         {"friction_transition_velocity": ground_truth.SMOOTHED_FRICTION}, 500),
        ("window_0/smoothed_friction", {"guess": smooth}, 500),
    ]
    # Only the model's own problem, solved last, is the solution.
    assert [(a["attempt"], a["final"]) for a in attempts] == [
        ("as configured", False), ("smoothed_friction (smooth)", False),
        ("smoothed_friction", True)]


def test_when_even_smooth_friction_fails_the_ladder_goes_on(monkeypatch, tmp_path):
    attempts, calls = _ladder(monkeypatch, tmp_path, "casadi",
                              lambda folder, options: folder.startswith("window_0/half"))
    assert [c[0] for c in calls] == [
        "window_0", "window_0/smoothed_friction/smooth", "window_0/relaxed_tolerance",
        "window_0/half_0", "window_0/half_1"]
    assert all(not c[1] for c in calls if "smoothed" not in c[0])
    assert [a["attempt"] for a in attempts if a["final"]] == ["half_0", "half_1"]


def test_moco_keeps_its_more_iterations_rung(monkeypatch, tmp_path):
    attempts, calls = _ladder(monkeypatch, tmp_path, "moco",
                              lambda folder, options: folder.endswith("more_iterations"))
    assert calls == [("window_0", {}, 500), ("window_0/more_iterations", {}, 2000)]
    assert attempts[-1]["final"] and attempts[-1]["attempt"] == "more_iterations"


def test_moco_refuses_engine_options(tmp_path):
    from osim.solve_process import run_window

    spec = WindowSpec(model="m.osim", coordinates="ik.sto", t0=0.0, t1=1.0,
                      workdir=str(tmp_path), settings=asdict(TrackSettings()))
    with pytest.raises(ValueError, match="takes no options"):
        run_window(spec, 10, {"friction_transition_velocity": 0.5})


SETUP_SIDE = r"""
import json, sys
from collocation.__main__ import prepare
from collocation.dynamics import build_functions
from collocation.spec import load_spec
import numpy as np
spec, extras, settings = load_spec(sys.argv[1])
setup, window, _ = prepare(spec, extras, settings)
# The feet's spheres slipping forward at 0.1 m/s: the standing reference, pelvis moving.
qd = np.zeros(len(setup.free))
qd[setup.free_names.index("pelvis_tx")] = 0.1
forces, _ = build_functions(setup)["contact"](window.q_ref[0], qd)
print(json.dumps({"transition": [s.transition_velocity for s in setup.spheres],
                  "fore_aft_n": float(np.sum(np.array(forces)[0]))}))
"""


@pytest.mark.slow
def test_the_spec_key_smooths_every_spheres_friction(tmp_path):
    pytest.importorskip("opensim")
    out = {}
    for name, extra in (("model", {}), ("smooth", {"friction_transition_velocity": 0.5})):
        path = standing_casadi_spec(tmp_path, name, extras=extra)
        done = subprocess.run([sys.executable, "-c", SETUP_SIDE, str(path)], cwd=REPO,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        out[name] = json.loads(done.stdout.strip().splitlines()[-1])
    model_tv = json.loads((tmp_path / "tree.json").read_text())["contact_spheres"][0][
        "transition_velocity"]
    assert model_tv == pytest.approx(0.2)
    assert set(out["model"]["transition"]) == {model_tv}
    assert set(out["smooth"]["transition"]) == {0.5}
    # Friction opposes the slip, and at 0.1 m/s a smoother friction has built up less of it.
    assert out["model"]["fore_aft_n"] < out["smooth"]["fore_aft_n"] < 0.0
