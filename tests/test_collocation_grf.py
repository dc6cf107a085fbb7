"""Force-plate tracking in the CasADi engine (Moco's MocoContactTrackingGoal, issue 9).

The built-in model standing still (0.3 s, 0.1 s mesh, arms and toes welded, as
tests/test_collocation_solve.py poses it) over "plates" that measure a load split the kinematics
do not imply. CasADi runs in a subprocess (this process imports opensim; DESIGN.md trap 2).

- the term against a hand computation: measured forces interpolated linearly from the .mot,
  spheres summed per foot by their body's side, Simpson's rule, divided by the model's weight
  from OpenSim itself (Moco's denominator), times the weight; a plate's zero while the plates
  see less than the body needs (a foot beside them) left out, a loaded plate kept;
- the hand-assembled Hessian of the Lagrangian == CasADi's exact one with the term added;
- solved with weight 0 and with weight > 0, the tracked solution's GRFs move onto the plates.
"""
import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import WELD, standing_trial

from osim.moco_track import TrackSettings
from pipeline.opensim_files import read_sto, write_sto

opensim = pytest.importorskip("opensim")

REPO = Path(__file__).resolve().parents[1]
MASS, HEIGHT = 70.0, 1.75

CASADI_SIDE = r"""
import json, sys
import casadi
import numpy as np
from collocation.__main__ import prepare
from collocation.dynamics import build_functions
from collocation.problem import build_nlp
from collocation.spec import load_spec
spec_path, out_path = sys.argv[1:3]
spec, extras, settings = load_spec(spec_path)
setup, window, _ = prepare(spec, extras, settings)
nlp, bounds, x0, derivatives = build_nlp(setup, window, settings)
f = casadi.Function("f", [nlp["x"], nlp["p"]], [nlp["f"]])
P = len(window.times)
forces, _ = build_functions(setup)["contact"].map(P)(window.q_ref.T, window.qd_ref.T)
# Exact Hessian of the Lagrangian (MX AD of the whole NLP) against the hand-assembled one.
lam_f, lam_g = 0.7, np.random.default_rng(0).normal(size=nlp["g"].shape[0])
lagrangian = lam_f * nlp["f"] + casadi.dot(casadi.DM(lam_g), nlp["g"])
exact = casadi.Function("h", [nlp["x"], nlp["p"]], [casadi.hessian(lagrangian, nlp["x"])[0]])
x = x0 + 1e-3 * np.random.default_rng(1).normal(size=x0.shape)
h_exact = np.triu(np.array(exact(x, 1.0)))
h_hand = np.array(derivatives["hess_lag"](x, 1.0, lam_f, lam_g))
json.dump({"times": window.times.tolist(),
           "tracked": None if window.grf is None else window.grf_tracked.tolist(),
           "grf": None if window.grf is None else window.grf.tolist(),
           "objective_at_reference": float(f(np.concatenate([
               np.vstack([window.q_ref.T, window.qd_ref.T, window.qdd_ref.T]).ravel(order="F"),
               x0[3 * len(setup.free) * P:]]), 1.0)),
           "forces": np.array(forces).reshape(3, P, -1).tolist(),
           "bodies": [setup.tree.body_names[s.body] for s in setup.spheres],
           "hess_error": float(np.max(np.abs(h_exact - h_hand))),
           "hess_scale": float(np.max(np.abs(h_exact)))}, open(out_path, "w"))
"""


@pytest.fixture(scope="module")
def standing(tmp_path_factory):
    from osim.export_tree import write_tree

    root = tmp_path_factory.mktemp("colloc_grf")
    model_path, _ = standing_trial(root, 0.3, HEIGHT, MASS)
    write_tree(model_path, root / "tree.json")
    model = opensim.Model(str(model_path))
    state = model.initSystem()
    g = model.getGravity()
    weight = model.getTotalMass(state) * float(np.linalg.norm([g[0], g[1], g[2]]))
    return root, model_path, weight


def _write_plates(path: Path, times, right, left) -> Path:
    """A GRF .mot: per-foot force (N) as (len(times), 3) arrays, CoP and torques zero."""
    data = {}
    for side, force in (("r", right), ("l", left)):
        for k, axis in enumerate("xyz"):
            data[f"ground_force_{side}_v{axis}"] = force[:, k]
        for axis in "xyz":
            data[f"ground_force_{side}_p{axis}"] = np.zeros(len(times))
    for side in ("r", "l"):
        for axis in "xyz":
            data[f"ground_torque_{side}_{axis}"] = np.zeros(len(times))
    write_sto(path, pd.DataFrame(data, index=pd.Index(times, name="time")), in_degrees=False,
              name="grf")
    return path


def _spec(root: Path, model_path: Path, name: str, grf: Path, **overrides) -> Path:
    settings = replace(TrackSettings(), mesh_interval=0.1, weld_joints=WELD, filter_hz=6.0,
                       engine="casadi", **overrides)
    spec = {"model": str(model_path), "coordinates": str(root / "ik.sto"), "t0": 0.0,
            "t1": 0.3, "workdir": str(root / name), "settings": asdict(settings),
            "grf": str(grf), "tree": str(root / "tree.json"), "engine": "casadi"}
    path = root / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


def _ramp(t):
    """Plates at 30 Hz with a ramping load (about the body's weight in all, as standing needs);
    the left plate reads zero before 0.08 s, as if that foot stood beside it. The grid points
    0.15 s and 0.2 s fall between samples."""
    right = np.stack([20.0 + 100.0 * t, 300.0 + 200.0 * t, -10.0 * np.ones_like(t)], axis=1)
    left = np.stack([-15.0 * np.ones_like(t), 400.0 - 300.0 * t, 5.0 + 50.0 * t], axis=1)
    return right, left * (t > 0.08)[:, None]


def test_term_matches_hand_computation(standing):
    root, model_path, weight = standing
    samples = np.arange(0.0, 0.31, 1.0 / 30.0)
    plates = _write_plates(root / "ramp.mot", samples, *_ramp(samples))
    w = 0.05
    spec = _spec(root, model_path, "unit", plates, contact_tracking_weight=w)
    spec0 = _spec(root, model_path, "unit0", plates, contact_tracking_weight=0.0)
    outs = []
    for path in (spec, spec0):
        out = root / f"{path.stem}_out.json"
        done = subprocess.run([sys.executable, "-c", CASADI_SIDE, str(path), str(out)],
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        outs.append(json.loads(out.read_text()))
    got = outs[0]
    assert outs[1]["grf"] is None  # weight 0: nothing tracked, as in Moco
    times = np.array(got["times"])
    np.testing.assert_allclose(times, [0.0, 0.05, 0.1, 0.15, 0.2])
    # Linear in time, so linear interpolation of the samples is exact.
    right, left = _ramp(times)
    np.testing.assert_allclose(np.array(got["grf"]), np.stack([right, left], axis=2), atol=1e-9)
    # The left plate's zero while the plates see only 0.45 BW of the 1 BW standing needs: a foot
    # beside the plate, not tracked; the loaded right plate is tracked throughout.
    tracked = np.array(got["tracked"])
    np.testing.assert_array_equal(tracked, [[1, 0], [1, 0], [1, 1], [1, 1], [1, 1]])

    forces = np.array(got["forces"])                                      # (3, P, S)
    is_right = np.array([b.endswith("_r") for b in got["bodies"]])
    assert is_right.sum() == 6 and (~is_right).sum() == 6   # 4 calcn + 2 toes spheres per foot
    model_r, model_l = forces[:, :, is_right].sum(axis=2).T, forces[:, :, ~is_right].sum(axis=2).T
    per_point = (np.sum((model_r - right) ** 2, axis=1)
                 + tracked[:, 1] * np.sum((model_l - left) ** 2, axis=1)) / weight  # (P,) N
    h = 0.1
    simpson = np.array([h / 6, 4 * h / 6, 2 * h / 6, 4 * h / 6, h / 6])
    expected = w * float(simpson @ per_point)
    assert expected > 1.0  # the plates differ from the model's contact: the term is not zero
    # The term at the reference states = the objective with it minus the objective without it.
    term = got["objective_at_reference"] - outs[1]["objective_at_reference"]
    assert term == pytest.approx(expected, rel=1e-9)
    assert got["hess_error"] <= 1e-8 * got["hess_scale"]


def _solve(spec_path: Path):
    done = subprocess.run([sys.executable, "-m", "collocation", str(spec_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    workdir = Path(json.loads(spec_path.read_text())["workdir"])
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads((workdir / "result.json").read_text()), read_sto(workdir / "kinetics.sto")


@pytest.mark.slow
def test_tracking_pulls_grf_onto_the_plates(standing):
    root, model_path, weight = standing
    # The kinematics stand evenly on both feet; the plates say 65 % right, 35 % left.
    samples = np.arange(0.0, 0.3001, 0.001)
    right = np.tile([0.0, 0.65 * weight, 0.0], (len(samples), 1))
    left = np.tile([0.0, 0.35 * weight, 0.0], (len(samples), 1))
    plates = _write_plates(root / "uneven.mot", samples, right, left)
    errors = {}
    for w in (0.0, 1e-2):
        result, kinetics = _solve(_spec(root, model_path, f"solve_{w}", plates,
                                        contact_tracking_weight=w))
        assert result["success"] and result["grf_tracked"] is (w > 0), result
        error = np.concatenate([kinetics["ground_force_r_vy"] - 0.65 * weight,
                                kinetics["ground_force_l_vy"] - 0.35 * weight])
        errors[w] = float(np.sqrt(np.mean(error ** 2))) / weight
        if w > 0:
            assert result["grf_tracking_cost"] > 0
    print("vertical GRF RMSE vs plates (BW):", errors)
    assert errors[0.0] > 0.1                 # untracked: the even split the kinematics imply
    assert errors[1e-2] < errors[0.0] / 10   # tracked: pulled onto the plates (0.005 here)
