"""The exported tree description: content, JSON round trip, transform functions evaluated
exactly as OpenSim evaluates them (inside and outside the spline knots), and clear errors."""
import json

import numpy as np
import opensim
import pytest
import torch
from conftest import shared_file

from models import rigid_body as rb
from models.dynamics import Multibody, TorchOps
from osim.export_tree import export_tree, write_tree
from pipeline.errors import ModelError


@pytest.fixture(scope="module")
def walking():
    path = shared_file("opensim-core", "example3DWalking", "subject_walk_scaled.osim")
    model = opensim.Model(str(path))
    model.initSystem()
    return path, model, export_tree(model)


def test_walking_tree_content(walking):
    _, model, desc = walking
    assert len(desc["bodies"]) == 22 and len(desc["joints"]) == 22
    assert len(desc["markers"]) == 65
    assert desc["gravity"] == pytest.approx([0, -9.80665, 0])
    names = [c["name"] for c in desc["coordinates"]]
    coords = model.getCoordinateSet()
    assert names == [coords.get(i).getName() for i in range(coords.getSize())]
    # Simbody orders mobilities by body, not by coordinate set: the exporter records the map.
    mob = [c["mobility_index"] for c in desc["coordinates"]]
    assert sorted(mob) == list(range(len(names))) and mob != sorted(mob)
    assert {c["dependent"]: c["independent"] for c in desc["coordinate_couplers"]} == {
        "knee_angle_r_beta": "knee_angle_r", "knee_angle_l_beta": "knee_angle_l"}
    pelvis = next(b for b in desc["bodies"] if b["name"] == "pelvis")
    assert pelvis["mass"] == pytest.approx(model.getBodySet().get("pelvis").getMass())
    total = sum(b["mass"] for b in desc["bodies"])
    assert total == pytest.approx(model.getTotalMass(model.initSystem()))
    knee = next(j for j in desc["joints"] if j["name"] == "walker_knee_r")
    kinds = [a["function"]["kind"] for a in knee["axes"]]
    assert kinds == ["linear", "polynomial", "polynomial", "polynomial", "polynomial",
                     "polynomial"]
    assert json.loads(json.dumps(desc)) == desc


def test_json_round_trip(walking, tmp_path):
    path, _, desc = walking
    out = write_tree(path, tmp_path / "tree.json")
    from_json = Multibody.from_json(out, dtype=torch.float64)
    from_dict = Multibody.from_tree(desc, dtype=torch.float64)
    q = torch.linspace(-0.5, 0.5, from_dict.num_coordinates, dtype=torch.float64)
    assert torch.equal(from_json.marker_positions(q), from_dict.marker_positions(q))
    assert from_json.coordinate_names == from_dict.coordinate_names


def test_functions_match_opensim_inside_and_outside_knots(walking):
    """Every non-constant transform function (Linear, Polynomial, SimmSpline, each inside a
    MultiplierFunction or not): value, first and second derivative to 1e-12."""
    _, model, desc = walking
    ops = TorchOps(torch.float64, torch.device("cpu"))
    x = np.linspace(-3.0, 4.0, 141)  # the patella splines have knots on [0, 2.09]
    d1, d2 = opensim.StdVectorInt(), opensim.StdVectorInt()
    d1.append(0)
    d2.append(0)
    d2.append(0)
    checked = set()
    for joint in desc["joints"]:
        if joint["type"] != "CustomJoint":
            continue
        st = opensim.CustomJoint.safeDownCast(model.getJointSet().get(joint["name"]))
        st = st.getSpatialTransform()
        for i, axis in enumerate(joint["axes"]):
            func = axis["function"]
            if func["kind"] == "constant":
                continue
            ours = rb.eval_function(ops, func, torch.tensor(x))
            ours = [torch.broadcast_to(torch.as_tensor(0.0 if v is None else v,
                                                       dtype=torch.float64), (len(x),))
                    for v in ours]
            of = st.getTransformAxis(i).get_function()
            for k, xv in enumerate(x):
                arg = opensim.Vector(1, float(xv))
                ref = (of.calcValue(arg), of.calcDerivative(d1, arg), of.calcDerivative(d2, arg))
                for order in range(3):
                    assert abs(ours[order][k].item() - ref[order]) < 1e-12, (joint["name"], i)
            checked.add(of.getConcreteClassName())
    assert {"LinearFunction", "MultiplierFunction"} <= checked


def _two_body_model(joint_kind: str) -> opensim.Model:
    model = opensim.Model()
    body = opensim.Body("b", 1.0, opensim.Vec3(0), opensim.Inertia(0.1, 0.1, 0.1))
    model.addBody(body)
    zero = opensim.Vec3(0)
    joint = getattr(opensim, joint_kind)("j", model.getGround(), zero, zero, body, zero, zero)
    model.addJoint(joint)
    return model


@pytest.mark.parametrize("kind", ["BallJoint", "FreeJoint"])
def test_unsupported_joint_raises(kind):
    with pytest.raises(ModelError, match=kind):
        export_tree(_two_body_model(kind))


def test_unsupported_constraint_raises():
    model = _two_body_model("PinJoint")
    model.addConstraint(opensim.WeldConstraint("weld", model.getGround(), opensim.Transform(),
                                               model.getBodySet().get("b"), opensim.Transform()))
    with pytest.raises(ModelError, match="WeldConstraint"):
        export_tree(model)


def test_missing_file_raises(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        export_tree(tmp_path / "nope.osim")
