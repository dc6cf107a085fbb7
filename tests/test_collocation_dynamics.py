"""The CasADi engine's physics against torch and OpenSim. CasADi runs in a subprocess: pytest's
process imports opensim, and the two must never share a process (DESIGN.md trap 2).

- inverse dynamics on CasADi symbols == the torch backend (same `models.rigid_body` code) on
  random states of the built-in model, float64;
- the contact law (`models.contact_model`, numpy) == OpenSim's SmoothSphereHalfSpaceForce given
  OpenSim's own sphere kinematics;
- the engine's contact loads (CasADi kinematics + contact law) == OpenSim's forces and torques;
- coupled coordinates (the walking model's patellae) follow their independent coordinate and
  pass their generalized force on to it by virtual work.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_file

from models import rigid_body as rb
from models.contact_model import contact_force, contact_point, spheres_from_description
from models.dynamics import TorchOps
from models.tree import build_tree, random_states

opensim = pytest.importorskip("opensim")

REPO = Path(__file__).resolve().parents[1]

CASADI_SIDE = r"""
import json, sys
import numpy as np
from collocation.dynamics import build_functions
from collocation.spec import model_setup
from osim.moco_track import TrackSettings
tree_path, states_path, out_path = sys.argv[1:4]
desc = json.loads(open(tree_path).read())
setup = model_setup(desc, [], (), TrackSettings().friction_kink)   # the engine's default
f = build_functions(setup)
s = np.load(states_path)
free = setup.free
tau = np.array(f["inverse"].map(len(s["q"]))(s["q"][:, free].T, s["qd"][:, free].T,
                                             s["qdd"][:, free].T)).T
out = {"inverse": tau.tolist(), "free": free, "forces": [], "points": [],
       "friction_kink": setup.friction_kink}
for q, qd in zip(s["q"][:, free], s["qd"][:, free]):
    forces, points = f["contact"](q, qd)
    out["forces"].append(np.array(forces).tolist())
    out["points"].append(np.array(points).tolist())
# The engine's process must never load opensim (DESIGN.md trap 2).
assert "opensim" not in sys.modules
open(out_path, "w").write(json.dumps(out))
"""


@pytest.fixture(scope="module")
def builtin(tmp_path_factory):
    from osim.builtin_model import build_model
    from osim.export_tree import export_tree

    root = tmp_path_factory.mktemp("colloc_dyn")
    model = build_model(1.75, 70.0, "F")
    state = model.initSystem()
    desc = export_tree(model)
    (root / "tree.json").write_text(json.dumps(desc))
    return root, model, state, desc


def _run_casadi(root: Path, q, qd, qdd, tree: str = "tree.json") -> dict:
    np.savez(root / "states.npz", q=q, qd=qd, qdd=qdd)
    subprocess.run([sys.executable, "-c", CASADI_SIDE, str(root / tree),
                    str(root / "states.npz"), str(root / "out.json")], cwd=REPO, check=True)
    return json.loads((root / "out.json").read_text())


def _near_floor_states(model, state, desc, n: int, seed: int):
    """Default standing pose, pelvis lowered 0-2 cm into the floor, small random motion."""
    rng = np.random.default_rng(seed)
    names = [c["name"] for c in desc["coordinates"]]
    q0 = np.array([c["default"] for c in desc["coordinates"]])
    q = q0 + rng.normal(0.0, 0.03, size=(n, len(q0)))
    q[:, names.index("pelvis_ty")] = q0[names.index("pelvis_ty")] - rng.uniform(0, 0.02, n)
    qd = rng.normal(0.0, 0.4, size=q.shape)
    return q, qd, rng.normal(0.0, 3.0, size=q.shape)


def test_casadi_inverse_dynamics_equals_torch(builtin):
    root, _, _, desc = builtin
    q, qd, qdd = random_states(desc, 6, seed=3)
    # Random states fly above the floor: no contact, so this is pure rigid-body dynamics.
    q[:, [c["name"] for c in desc["coordinates"]].index("pelvis_ty")] = 3.0
    out = _run_casadi(root, q, qd, qdd)
    ops = TorchOps(torch.float64, torch.device("cpu"))
    tree = build_tree(desc)
    expected = rb.rnea(ops, tree, *(torch.as_tensor(a) for a in (q, qd, qdd))).numpy()
    assert np.abs(expected).max() > 10.0
    np.testing.assert_allclose(np.array(out["inverse"]), expected, rtol=0, atol=1e-9)
    assert np.all(np.array(out["forces"]) == 0.0)  # far above the floor, smoothing aside


def _opensim_sphere_forces(model, state, desc, q, qd):
    """Per state and sphere: OpenSim's force on the foot (N) and its torque about the body
    origin (N*m), and the sphere centre and body-origin kinematics that OpenSim computes."""
    from osim.export_tree import simbody_vectors

    forces = model.getForceSet()
    bodies = model.getBodySet()
    out = []
    for qi, qdi in zip(q, qd):
        qv, uv = simbody_vectors(desc["coordinates"], qi, qdi)
        state.setQ(qv)
        state.setU(uv)
        model.realizeDynamics(state)
        rows = []
        for s in desc["contact_spheres"]:
            values = forces.get(s["name"]).getRecordValues(state)
            body = bodies.get(s["body"])
            center = opensim.Vec3(*s["location"])
            rows.append({
                "force": np.array([values.get(i) for i in range(3)]),
                "torque": np.array([values.get(i) for i in range(3, 6)]),
                "center": np.array(body.findStationLocationInGround(state, center).to_numpy()),
                "origin": np.array(body.getPositionInGround(state).to_numpy()),
                "w": np.array(body.getAngularVelocityInGround(state).to_numpy()),
                "v0": np.array(body.getLinearVelocityInGround(state).to_numpy())})
        out.append(rows)
    return out


def test_contact_law_equals_opensim(builtin):
    """numpy backend of the contact law, fed OpenSim's own sphere kinematics."""
    _, model, state, desc = builtin
    q, qd, _ = _near_floor_states(model, state, desc, 8, seed=1)
    reference = _opensim_sphere_forces(model, state, desc, q, qd)
    spheres = spheres_from_description(desc, {b["name"]: i for i, b in
                                              enumerate(desc["bodies"])})
    loaded = 0
    for rows in reference:
        for sphere, row in zip(spheres, rows):
            depth, point = contact_point(sphere, tuple(row["center"]))
            point = np.array(point)
            velocity = row["v0"] + np.cross(row["w"], point - row["origin"])
            force = np.array(contact_force(np, sphere, depth, tuple(velocity)))
            np.testing.assert_allclose(force, row["force"], rtol=1e-10, atol=1e-9)
            np.testing.assert_allclose(np.cross(point - row["origin"], force), row["torque"],
                                       rtol=1e-10, atol=1e-9)
            loaded += row["force"][1] > 10.0
    assert loaded >= 20  # the states really press most spheres into the floor


def test_engine_contact_loads_equal_opensim(builtin):
    """CasADi kinematics + the contact law, through the engine's own function: exactly the law
    with the engine's rounded friction kink at OpenSim's sphere kinematics, and OpenSim's own
    force within that rounding's bound (d / 2 x static friction x normal force)."""
    root, model, state, desc = builtin
    q, qd, qdd = _near_floor_states(model, state, desc, 5, seed=2)
    reference = _opensim_sphere_forces(model, state, desc, q, qd)
    out = _run_casadi(root, q, qd, qdd)
    kink = out["friction_kink"]
    assert 0.0 < kink <= 0.05
    spheres = spheres_from_description(desc, {b["name"]: i for i, b in
                                              enumerate(desc["bodies"])})
    rounded = 0
    for k, rows in enumerate(reference):
        forces, points = np.array(out["forces"][k]), np.array(out["points"][k])  # (3, S)
        for s, (sphere, row) in enumerate(zip(spheres, rows)):
            depth, point = contact_point(sphere, tuple(row["center"]))
            velocity = row["v0"] + np.cross(row["w"], np.array(point) - row["origin"])
            law = np.array(contact_force(np, sphere, depth, tuple(velocity), friction_kink=kink))
            np.testing.assert_allclose(forces[:, s], law, rtol=1e-9, atol=1e-8)
            np.testing.assert_allclose(points[:, s], point, rtol=1e-9, atol=1e-9)
            normal = abs(row["force"] @ sphere.normal)
            difference = np.linalg.norm(forces[:, s] - row["force"])
            assert difference <= 0.5 * kink * sphere.static_friction * normal + 1e-8
            rounded += difference > 1e-6
            np.testing.assert_allclose(np.cross(points[:, s] - row["origin"], row["force"]),
                                       row["torque"], rtol=1e-9, atol=1e-8)
    assert rounded > 0  # the rounding is there, and the bound above was tested


def test_coupled_coordinates_follow_and_project(builtin):
    """On the walking model, knee_angle_<s>_beta = f(knee_angle_<s>): the engine's generalized
    force on the knee is torch's (every coordinate independent, states set on the coupler)
    plus f' times torch's force on beta; the betas are not optimized."""
    root = builtin[0]
    desc = _walking_tree()
    (root / "walk.json").write_text(json.dumps(desc))
    names = [c["name"] for c in desc["coordinates"]]
    q, qd, qdd = random_states(desc, 4, seed=5)
    for c in desc["coordinate_couplers"]:
        assert c["function"]["kind"] == "linear"
        dep, ind = names.index(c["dependent"]), names.index(c["independent"])
        f = c["function"]
        slope = f["scale"] * f["slope"]
        q[:, dep] = f["scale"] * (f["slope"] * q[:, ind] + f["intercept"])
        qd[:, dep], qdd[:, dep] = slope * qd[:, ind], slope * qdd[:, ind]
    q[:, names.index("pelvis_ty")] = 3.0  # no contact (the walking model has none anyway)
    out = _run_casadi(root, q, qd, qdd, "walk.json")
    free = out["free"]
    assert not {"knee_angle_r_beta", "knee_angle_l_beta"} & {names[i] for i in free}
    ops = TorchOps(torch.float64, torch.device("cpu"))
    tau = rb.rnea(ops, build_tree(desc), *(torch.as_tensor(a) for a in (q, qd, qdd))).numpy()
    for c in desc["coordinate_couplers"]:
        dep, ind = names.index(c["dependent"]), names.index(c["independent"])
        tau[:, ind] += c["function"]["scale"] * c["function"]["slope"] * tau[:, dep]
    # The patella is light, but its term is far above the tolerance.
    assert np.abs(tau[:, names.index("knee_angle_r_beta")]).max() > 1e-3
    np.testing.assert_allclose(np.array(out["inverse"]), tau[:, free], rtol=0, atol=1e-9)


def _walking_tree() -> dict:
    from osim.export_tree import export_tree

    return export_tree(shared_file("opensim-core", "example3DWalking", "subject_walk_scaled.osim"))


@pytest.mark.parametrize("slip_over_transition", [1.0, 0.5, 2.0])
def test_rounded_friction_kink_is_within_its_bound(builtin, slip_over_transition):
    """The rounding lowers only the Coulomb ramp: by d / 2 at the kink (slip = transition
    velocity), where the friction is static x normal force, and by less than d / 40 ten widths
    away; the normal force is untouched."""
    desc = builtin[3]
    sphere = spheres_from_description(desc, {b["name"]: i for i, b in
                                             enumerate(desc["bodies"])})[0]
    tangent = np.cross(sphere.normal, [0.0, 0.0, 1.0])
    tangent /= np.linalg.norm(tangent)
    velocity = tuple(slip_over_transition * sphere.transition_velocity * tangent)
    kink = 0.05
    exact = np.array(contact_force(np, sphere, 0.01, velocity))
    rounded = np.array(contact_force(np, sphere, 0.01, velocity, friction_kink=kink))
    normal = abs(exact @ sphere.normal)
    assert rounded @ sphere.normal == pytest.approx(exact @ sphere.normal, rel=1e-12)
    shortfall = (abs(exact @ tangent) - abs(rounded @ tangent)) / normal
    # The law's slip speed is smoothed by the constant contact force term: sqrt(v^2 + cf).
    v = slip_over_transition * sphere.transition_velocity
    slip = np.sqrt(v * v + sphere.constant_contact_force)
    x, us, ud = slip / sphere.transition_velocity, sphere.static_friction, sphere.dynamic_friction
    ramp_drop = 0.5 * (np.hypot(x - 1.0, kink) - abs(x - 1.0))
    expected = ramp_drop * (ud + 2.0 * (us - ud) / (1.0 + x * x)) * v / slip
    assert shortfall == pytest.approx(expected, rel=1e-6)
    if slip_over_transition == 1.0:
        assert shortfall == pytest.approx(0.5 * kink * us, rel=1e-2)
    else:
        assert 0.0 < ramp_drop < kink / 40
