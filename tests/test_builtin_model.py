"""The built-in full-body model: mass, topology, standing geometry, markers, contact, CLI."""
import math
import subprocess
import sys
import xml.etree.ElementTree as ET

import numpy as np
import opensim
import pytest

from osim import anthropometry
from osim.builtin_model import COORDINATE_NAMES, build_model, write_model
from osim.contact import add_foot_contact, vertical_contact_force
from osim.markers import BONY_LANDMARKS, MARKER_NAMES
from pipeline.errors import ModelError

SUBJECTS = [("F", 1.60, 55.0), ("F", 1.78, 82.5), ("M", 1.70, 62.0), ("M", 1.95, 110.0)]

EXPECTED_COORDINATES = (
    ["pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx", "pelvis_ty", "pelvis_tz"]
    + [f"{c}_r" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle",
                          "ankle_angle", "subtalar_angle", "mtp_angle")]
    + [f"{c}_l" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle",
                          "ankle_angle", "subtalar_angle", "mtp_angle")]
    + ["lumbar_extension", "lumbar_bending", "lumbar_rotation"]
    + [f"{c}_r" for c in ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup",
                          "wrist_flex", "wrist_dev")]
    + [f"{c}_l" for c in ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup",
                          "wrist_flex", "wrist_dev")])

# The marker table of the task: right side, midline; left twins are the L-prefixed mirrors.
MARKER_TABLE = {
    "pelvis": ["RASI", "LASI", "RPSI", "LPSI", "SACR"],
    "femur_r": ["RTHI", "RKNE", "RKNM"], "tibia_r": ["RTIB", "RANK", "RMMA"],
    "calcn_r": ["RHEE", "RMT1", "RMT5"], "toes_r": ["RTOE"],
    "torso": ["C7", "T10", "CLAV", "STRN", "RSHO", "LSHO", "RFHD", "LFHD", "RBHD", "LBHD", "VRTX"],
    "humerus_r": ["RUPA", "RELB", "RELM"], "radius_r": ["RWRA"], "ulna_r": ["RWRB"],
    "hand_r": ["RFIN"],
}
for _body in [b for b in MARKER_TABLE if b.endswith("_r")]:
    MARKER_TABLE[_body[:-2] + "_l"] = ["L" + m[1:] for m in MARKER_TABLE[_body]]


def _vec(v) -> np.ndarray:
    return np.array([v.get(i) for i in range(3)])


def _orientation(frame, state) -> np.ndarray:
    """Orientation of a frame in ground as a 3x3 array (each temporary kept alive: SWIG)."""
    transform = frame.getTransformInGround(state)
    rotation = transform.R()
    mat = rotation.asMat33()
    return np.array([[mat.get(i, j) for j in range(3)] for i in range(3)])


def _total_mass(model) -> float:
    bodies = model.getBodySet()
    return sum(bodies.get(i).getMass() for i in range(bodies.getSize()))


@pytest.fixture(scope="module")
def male_175():
    model = build_model(1.75, 70.0, "M")
    return model, model.initSystem()


@pytest.mark.parametrize("sex,height,mass", SUBJECTS)
def test_total_mass_equals_asked_mass(sex, height, mass):
    model = build_model(height, mass, sex)
    assert abs(_total_mass(model) - mass) / mass < 1e-6
    # Segments carry de Leva's normalised fractions: thigh 14.16 % (M) / 14.78 % (F) of 99.99/100.
    thigh = {"M": 14.16 / 100.0, "F": 14.78 / 99.99}[sex] * mass
    assert model.getBodySet().get("femur_l").getMass() == pytest.approx(thigh, rel=1e-9)
    hand = model.getBodySet().get("hand_r")
    assert hand.getMass() == pytest.approx({"M": 0.61 / 100, "F": 0.56 / 99.99}[sex] * mass)


def test_written_file_loads_with_rajagopal_names(tmp_path):
    path = write_model(build_model(1.68, 64.0, "female", name="s01"), tmp_path / "s01.osim")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s01.osim"]
    model = opensim.Model(str(path))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    assert names == EXPECTED_COORDINATES == list(COORDINATE_NAMES)
    bodies = {model.getBodySet().get(i).getName() for i in range(model.getNumBodies())}
    assert len(bodies) >= 20
    assert {"pelvis", "torso", "femur_r", "tibia_l", "talus_r", "calcn_l", "toes_r", "humerus_l",
            "ulna_r", "radius_l", "hand_r"} <= bodies
    assert abs(_total_mass(model) - 64.0) < 64.0 * 1e-6
    forces = model.getForceSet()
    actuators = {forces.get(i).getName(): forces.get(i) for i in range(forces.getSize())
                 if forces.get(i).getConcreteClassName() == "CoordinateActuator"}
    assert set(actuators) == ({f"residual_{c}" for c in names[:6]}
                              | {f"tau_{c}" for c in names[6:]})
    hip = opensim.CoordinateActuator.safeDownCast(actuators["tau_hip_flexion_r"])
    assert hip.getOptimalForce() == pytest.approx(0.09 * 64.0 * 9.80665 * 1.68)
    # Default pose: everything zero but the pelvis height.
    q = [coords.get(i).getValue(state) for i in range(coords.getSize())]
    assert all(v == 0.0 for i, v in enumerate(q) if names[i] != "pelvis_ty")
    assert 0.8 < q[names.index("pelvis_ty")] < 1.0


@pytest.mark.parametrize("sex,height,mass", SUBJECTS)
def test_standing_height_and_feet_on_floor(sex, height, mass):
    model = build_model(height, mass, sex)
    state = model.initSystem()
    vertex = _vec(model.getMarkerSet().get("VRTX").getLocationInGround(state))
    assert abs(vertex[1] - height) / height < 0.03
    spheres = model.getContactGeometrySet()
    bottoms = []
    for i in range(spheres.getSize()):
        sphere = opensim.ContactSphere.safeDownCast(spheres.get(i))
        if sphere is None:
            continue
        centre = sphere.getFrame().findStationLocationInGround(state, sphere.get_location())
        bottoms.append(centre.get(1) - sphere.getRadius())
    assert len(bottoms) == 12
    assert max(abs(b) for b in bottoms) < 1e-9     # all spheres just touch the floor
    # Standing landmarks in their usual proportions of stature (Winter 2009, Table 4.1).
    state_markers = {n: _vec(model.getMarkerSet().get(n).getLocationInGround(state))
                     for n in ("RKNE", "RSHO", "RHEE", "RTOE", "C7")}
    assert 0.26 < state_markers["RKNE"][1] / height < 0.31
    assert 0.80 < state_markers["RSHO"][1] / height < 0.87
    foot = state_markers["RTOE"][0] - state_markers["RHEE"][0]
    assert foot == pytest.approx(anthropometry.segment_length("foot", height, sex), rel=0.02)


def test_markers_unique_on_intended_bodies(male_175):
    model, state = male_175
    markers = model.getMarkerSet()
    found = {markers.get(i).getName(): markers.get(i).getParentFrame().getName()
             for i in range(markers.getSize())}
    assert len(found) == markers.getSize() == len(MARKER_NAMES) == 48
    expected = {name: body for body, names in MARKER_TABLE.items() for name in names}
    assert found == expected
    assert set(BONY_LANDMARKS) == set(expected) - {"RTHI", "LTHI", "RTIB", "LTIB", "RUPA", "LUPA"}
    # Mirror symmetry: every left marker is its right twin with z negated.
    for name in found:
        if name.startswith("R") and "L" + name[1:] in found:
            right = _vec(markers.get(name).getLocationInGround(state))
            left = _vec(markers.get("L" + name[1:]).getLocationInGround(state))
            np.testing.assert_allclose(left, right * [1, 1, -1], atol=1e-12)
            assert right[2] > 0.0 or name in ("RKNM", "RMMA", "RELM")


def test_lateral_markers_outside_medial(male_175):
    model, state = male_175
    z = {n: _vec(model.getMarkerSet().get(n).getLocationInGround(state))[2]
         for n in ("RKNE", "RKNM", "RANK", "RMMA", "RELB", "RELM", "RWRA", "RWRB", "RMT5", "RMT1")}
    for lateral, medial in (("RKNE", "RKNM"), ("RANK", "RMMA"), ("RELB", "RELM"),
                            ("RWRA", "RWRB"), ("RMT5", "RMT1")):
        assert z[lateral] - z[medial] > 0.04


def test_standing_equilibrium_contact_force_equals_body_weight():
    mass = 70.0
    model = build_model(1.75, mass, "M")
    coords = model.getCoordinateSet()
    for i in range(coords.getSize()):
        if coords.get(i).getName() != "pelvis_ty":
            coords.get(i).setDefaultLocked(True)
    state = model.initSystem()
    start_ty = coords.get("pelvis_ty").getValue(state)
    manager = opensim.Manager(model)
    manager.setIntegratorAccuracy(1e-5)
    state.setTime(0.0)
    manager.initialize(state)
    state = manager.integrate(1.0)
    model.realizeDynamics(state)
    weight = mass * 9.80665
    assert vertical_contact_force(model, state) == pytest.approx(weight, rel=0.05)
    assert abs(coords.get("pelvis_ty").getSpeedValue(state)) < 1e-3
    sink = start_ty - coords.get("pelvis_ty").getValue(state)
    assert 0.0 < sink < 0.02            # the feet sink a few mm into the floor, not through it


def test_joint_axes_match_rajagopal(walking_dir, male_175):
    """Each joint turns its child the same way as in Moco's Rajagopal-derived subject model."""
    ours, our_state = male_175
    ref = opensim.Model(str(walking_dir / "subject_walk_scaled.osim"))
    ref_state = ref.initSystem()
    checks = ["hip_flexion_r", "hip_adduction_l", "hip_rotation_l", "ankle_angle_r",
              "ankle_angle_l", "lumbar_bending", "arm_add_l", "arm_rot_r", "elbow_flex_r",
              "elbow_flex_l", "pro_sup_r", "pro_sup_l"]
    for coord in checks:
        turned = []
        for model, state in ((ours, our_state), (ref, ref_state)):
            c = model.getCoordinateSet().get(coord)
            child = c.getJoint().getChildFrame().findBaseFrame()
            model.realizePosition(state)
            before = _orientation(child, state)
            c.setValue(state, 0.4)
            after = _orientation(child, state)
            c.setValue(state, 0.0)
            turned.append(after @ before.T)     # rotation the coordinate causes, in ground
        np.testing.assert_allclose(turned[0], turned[1], atol=1e-4, err_msg=coord)
    ranges = ("hip_flexion_r", "hip_adduction_l", "hip_rotation_r", "knee_angle_l",
              "ankle_angle_r", "lumbar_extension", "elbow_flex_l", "pro_sup_r")
    for coord in ranges:
        a, b = ours.getCoordinateSet().get(coord), ref.getCoordinateSet().get(coord)
        assert (a.getRangeMin(), a.getRangeMax()) == pytest.approx(
            (b.getRangeMin(), b.getRangeMax()), abs=1e-4), coord  # file rounds


def test_knee_flexion_swings_the_shank_backwards(male_175):
    model, state = male_175
    knee = model.getCoordinateSet().get("knee_angle_r")
    ankle = model.getMarkerSet().get("RANK")
    x0 = _vec(ankle.getLocationInGround(state))[0]
    knee.setValue(state, math.radians(90))
    x90 = _vec(ankle.getLocationInGround(state))[0]
    knee.setValue(state, 0.0)
    assert x0 - x90 > 0.3


def test_foot_contact_on_the_moco_subject_matches_its_contact_file(walking_dir):
    model = opensim.Model(str(walking_dir / "subject_walk_scaled.osim"))
    names = add_foot_contact(model, radius=0.035)
    assert names[:2] == ["contactHeel_r", "contactLateralRearfoot_r"] and len(names) == 12
    reference = ET.parse(walking_dir / "subject_walk_scaled_ContactGeometrySet.xml").getroot()
    spheres = reference.findall(".//ContactSphere")
    assert len(spheres) == 12
    geometry = model.getContactGeometrySet()
    for sphere in spheres:
        ours = opensim.ContactSphere.safeDownCast(geometry.get(sphere.get("name")))
        expected = [float(v) for v in sphere.find("location").text.split()]
        np.testing.assert_allclose(_vec(ours.get_location()), expected, atol=5e-5)
        assert ours.getFrame().getName() == sphere.find("socket_frame").text.split("/")[-1]
    with pytest.raises(ModelError, match="already has foot contact"):
        add_foot_contact(model)


@pytest.mark.parametrize("kwargs,match", [
    ({"height_m": 1.75, "mass_kg": -70.0, "sex": "F"}, "mass"),
    ({"height_m": 1.75, "mass_kg": 300.0, "sex": "M"}, "mass"),
    ({"height_m": 5.0, "mass_kg": 70.0, "sex": "M"}, "height"),
    ({"height_m": 0.5, "mass_kg": 70.0, "sex": "M"}, "height"),
    ({"height_m": 1.75, "mass_kg": 70.0, "sex": "X"}, "sex"),
])
def test_bad_input_raises_model_error(kwargs, match):
    with pytest.raises(ModelError, match=match):
        build_model(**kwargs)


def test_sex_words_and_determinism(tmp_path):
    """'FEMALE' and 'f' give the same model, byte for byte, and so does building it twice."""
    paths = [write_model(build_model(1.7, 60.0, sex), tmp_path / f"{i}.osim")
             for i, sex in enumerate(("FEMALE", "f", "F"))]
    texts = {p.read_text() for p in paths}
    assert len(texts) == 1
    assert "<SmoothSphereHalfSpaceForce" in texts.pop()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "osim", "build-model", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def test_cli_writes_a_loadable_model(tmp_path):
    out = tmp_path / "models" / "s01.osim"
    result = _cli("--height", "1.82", "--mass", "77", "--sex", "M", "--out", str(out),
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    model = opensim.Model(str(out))
    model.initSystem()
    assert model.getNumCoordinates() == 37
    assert abs(_total_mass(model) - 77.0) < 77.0 * 1e-6
    assert sorted(p.name for p in out.parent.iterdir()) == ["s01.osim"]


@pytest.mark.parametrize("height,mass,sex,word", [
    ("1.75", "-70", "F", "mass"), ("5", "70", "F", "height"), ("1.75", "70", "X", "sex")])
def test_cli_bad_input_fails_cleanly(tmp_path, height, mass, sex, word):
    out = tmp_path / "bad.osim"
    result = _cli("--height", height, "--mass", mass, "--sex", sex, "--out", str(out),
                  cwd=tmp_path)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and word in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_write_model_into_a_file_path_raises_model_error(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    with pytest.raises(ModelError, match="cannot write"):
        write_model(build_model(1.7, 60.0, "M"), blocker / "m.osim")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["not_a_folder"]
