"""IPOPT solves the engine's NLP in scaled variables x~ = x / s (`collocation.problem`): the same
problem, so the scaled objective, constraints, Jacobian and Hessian of the Lagrangian must be
the unscaled ones by the chain rule, and the scales must follow the reference's speeds and
accelerations. On the built-in model standing (the tests' small window); CasADi runs in a
subprocess (this process imports opensim; DESIGN.md trap 2)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import standing_casadi_spec

REPO = Path(__file__).resolve().parents[1]

CASADI_SIDE = r"""
import json, sys
import numpy as np
from collocation.__main__ import prepare
from collocation.problem import Window, build_nlp, scale_nlp, variable_scales
from collocation.spec import load_spec
spec, extras, settings = load_spec(sys.argv[1])
setup, window, _ = prepare(spec, extras, settings)
nlp, bounds, x0, der = build_nlp(setup, window, settings)
rng = np.random.default_rng(0)
s = np.exp(rng.uniform(-2.0, 3.0, x0.size))       # any positive scales
snlp, sbounds, sx0, sder = scale_nlp(nlp, bounds, x0, der, s)
import casadi
fg = casadi.Function("fg", [nlp["x"], nlp["p"]], [nlp["f"], nlp["g"]])
sfg = casadi.Function("sfg", [snlp["x"], snlp["p"]], [snlp["f"], snlp["g"]])
x = x0 + 1e-3 * rng.normal(size=x0.size)
lam_f, lam_g = 0.7, rng.normal(size=nlp["g"].shape[0])
f, g = (np.array(v).ravel() for v in fg(x, 1.0))
sf, sg = (np.array(v).ravel() for v in sfg(x / s, 1.0))
_, jac = der["jac_g"](x, 1.0)
_, sjac = sder["jac_g"](x / s, 1.0)
hess = np.array(der["hess_lag"](x, 1.0, lam_f, lam_g))
shess = np.array(sder["hess_lag"](x / s, 1.0, lam_f, lam_g))
jac, sjac = np.array(jac), np.array(sjac)
nf, npts = len(setup.free), len(window.times)
# The scales of a window whose reference moves: speeds and accelerations of 3 and 40.
moving = Window(times=window.times, q_ref=window.q_ref, qd_ref=np.full_like(window.qd_ref, 3.0),
                qdd_ref=np.full_like(window.qdd_ref, -40.0), q_lower=window.q_lower,
                q_upper=window.q_upper, u_lower=window.u_lower, u_upper=window.u_upper)
scales = variable_scales(moving, nf, 5)
still = variable_scales(window, nf, 5)
json.dump({
    "f": abs(sf[0] - f[0]) / abs(f[0]), "g": float(np.max(np.abs(sg - g))),
    "jac": float(np.max(np.abs(sjac - jac * s[None, :])) / np.max(np.abs(jac))),
    "hess": float(np.max(np.abs(shess - s[:, None] * hess * s[None, :]))
                  / np.max(np.abs(hess))),
    "upper": bool(np.allclose(shess, np.triu(shess))),
    "bounds": float(np.nanmax(np.abs(np.where(np.isfinite(bounds["lbx"]),
                                              sbounds["lbx"] * s - bounds["lbx"], 0.0)))),
    "guess": float(np.max(np.abs(sx0 * s - x0))),
    "first_point": scales[:3 * nf].tolist(), "length": len(scales),
    "expected_length": 3 * nf * npts + 5, "controls": scales[-5:].tolist(),
    "still_min": float(still.min()), "nf": nf}, open(sys.argv[2], "w"))
"""


@pytest.mark.slow
def test_scaled_nlp_is_the_same_problem(tmp_path):
    pytest.importorskip("opensim")
    path, out = standing_casadi_spec(tmp_path, "w"), tmp_path / "out.json"
    done = subprocess.run([sys.executable, "-c", CASADI_SIDE, str(path), str(out)], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["f"] < 1e-12 and r["g"] < 1e-9
    assert r["jac"] < 1e-12 and r["hess"] < 1e-12 and r["upper"]
    assert r["bounds"] < 1e-9 and r["guess"] < 1e-9
    nf = r["nf"]
    # q as it is; q' by 3 and q'' by 40 (the reference's largest |value|); controls as they are.
    assert np.allclose(r["first_point"], [1.0] * nf + [3.0] * nf + [40.0] * nf)
    assert r["length"] == r["expected_length"] and r["controls"] == [1.0] * 5
    assert r["still_min"] == 1.0   # a still reference keeps the units (scales at least 1)


@pytest.mark.slow
def test_scaled_and_unscaled_solves_agree(tmp_path):
    """`scale_variables` changes IPOPT's path, not the problem: on the standing window both
    converge to the same solution."""
    pytest.importorskip("opensim")
    results = {}
    for scaled in (True, False):
        name = f"scaled_{scaled}"
        path = standing_casadi_spec(tmp_path, name, scale_variables=scaled)
        done = subprocess.run([sys.executable, "-m", "collocation", str(path)], cwd=REPO,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        results[scaled] = (json.loads((tmp_path / name / "result.json").read_text()),
                           np.load(tmp_path / name / "solution.npz"))
    (r1, s1), (r0, s0) = results[True], results[False]
    assert r1["settings"]["scale_variables"] and not r0["settings"]["scale_variables"]
    assert r1["objective"] == pytest.approx(r0["objective"], rel=1e-3)
    assert np.max(np.abs(s1["q"] - s0["q"])) < np.radians(0.05)
