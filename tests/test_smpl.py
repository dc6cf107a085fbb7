"""SMPL sequences to virtual markers, against a small SMPL-format model the test writes itself.

The model has SMPL's 24-joint tree and 6890 vertices, each bound rigidly (one-hot skinning weight)
to one joint, so each marker must follow its bone exactly: the reference here is forward
kinematics written from the kinematic tree and Rodrigues' formula, independent of smplx.
"""
import importlib.util
import json
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse

from pipeline import smpl
from pipeline.errors import IngestError

# The marker names the built-in OpenSim model uses (issue 3).
R_SIDED = ["RTHI", "RKNE", "RKNM", "RTIB", "RANK", "RMMA", "RHEE", "RMT1", "RMT5", "RTOE",
           "RUPA", "RELB", "RELM", "RWRA", "RWRB", "RFIN"]
EXPECTED_MARKERS = (["RASI", "LASI", "RPSI", "LPSI", "SACR", "C7", "T10", "CLAV", "STRN", "RSHO",
                     "LSHO", "RFHD", "LFHD", "RBHD", "LBHD", "VRTX"]
                    + R_SIDED + ["L" + name[1:] for name in R_SIDED])

PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
# Rest joint centres roughly where SMPL's neutral template puts them (m; Y up, +X left, +Z front).
REST_JOINTS = np.array([
    [0.00, -0.22, 0.03], [0.07, -0.31, 0.02], [-0.07, -0.31, 0.02], [0.00, -0.11, 0.00],
    [0.10, -0.69, 0.02], [-0.11, -0.70, 0.02], [0.01, 0.02, 0.03], [0.09, -1.09, -0.02],
    [-0.09, -1.09, -0.02], [0.00, 0.08, 0.03], [0.12, -1.14, 0.10], [-0.12, -1.15, 0.10],
    [-0.01, 0.29, -0.01], [0.08, 0.20, -0.01], [-0.08, 0.19, -0.01], [0.01, 0.35, 0.04],
    [0.17, 0.23, -0.01], [-0.17, 0.22, -0.02], [0.42, 0.20, -0.04], [-0.42, 0.20, -0.05],
    [0.67, 0.21, -0.04], [-0.67, 0.21, -0.05], [0.75, 0.20, -0.06], [-0.75, 0.20, -0.07]])
N_VERTS, N_BETAS = 6890, 10


def rodrigues(r):
    """Rotation matrix of an axis-angle vector (rad)."""
    theta = np.linalg.norm(r)
    if theta < 1e-12:
        return np.eye(3)
    k = r / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * K + (1 - np.cos(theta)) * K @ K


def forward_kinematics(pose72, joints):
    """Global rotations (24, 3, 3) and posed joint centres (24, 3) of the kinematic tree."""
    R, t = np.zeros((24, 3, 3)), np.zeros((24, 3))
    for j, p in enumerate(PARENTS):
        local = rodrigues(pose72[3 * j:3 * j + 3])
        if p < 0:
            R[j], t[j] = local, joints[j]
        else:
            R[j], t[j] = R[p] @ local, R[p] @ (joints[j] - joints[p]) + t[p]
    return R, t


def _fake_chumpy_ch():
    """A class that pickles as `chumpy.ch.Ch` with chumpy's state layout (array under "x")."""
    class Ch:
        def __init__(self, x):
            self.x = x

    Ch.__module__, Ch.__qualname__, Ch.__name__ = "chumpy.ch", "Ch", "Ch"
    package, module = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")
    module.Ch, package.ch = Ch, module
    return Ch, {"chumpy": package, "chumpy.ch": module}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """Writes SMPL_NEUTRAL.pkl (official keys, chumpy shapedirs, sparse J_regressor)."""
    rng = np.random.default_rng(7)
    marker_map = smpl.load_marker_map()
    joint_of = rng.integers(0, 24, N_VERTS)
    for entry in marker_map.values():
        joint_of[entry["vertex"]] = smpl.SMPL_JOINT_NAMES.index(entry["joint"])
    # One vertex per joint sits on the joint centre and alone regresses it.
    anchors = [v for v in range(5000, 6000) if v not in {e["vertex"] for e in marker_map.values()}]
    anchors = np.array(anchors[:24])
    joint_of[anchors] = np.arange(24)
    v_template = REST_JOINTS[joint_of] + rng.normal(0, 0.04, (N_VERTS, 3))
    v_template[anchors] = REST_JOINTS
    shapedirs = rng.normal(0, 0.01, (N_VERTS, 3, N_BETAS))
    j_regressor = np.zeros((24, N_VERTS))
    j_regressor[np.arange(24), anchors] = 1.0
    weights = np.eye(24)[joint_of]
    kintree = np.array([[2**32 - 1] + PARENTS[1:], list(range(24))], dtype=np.int64)
    faces = rng.integers(0, N_VERTS, (100, 3)).astype(np.uint32)

    Ch, modules = _fake_chumpy_ch()
    data = {"v_template": v_template, "shapedirs": Ch(shapedirs),
            "posedirs": np.zeros((N_VERTS, 3, 207), dtype=np.float32),
            "J_regressor": scipy.sparse.csc_matrix(j_regressor), "weights": weights,
            "kintree_table": kintree, "f": faces, "bs_style": "lbs"}
    folder = tmp_path_factory.mktemp("smpl_model")
    path = folder / "SMPL_NEUTRAL.pkl"
    sys.modules.update(modules)  # only while pickling: loading must work without chumpy
    try:
        path.write_bytes(pickle.dumps(data, protocol=2))
    finally:
        for name in modules:
            sys.modules.pop(name)
    return types.SimpleNamespace(path=path, folder=folder, v_template=v_template,
                                 shapedirs=shapedirs, j_regressor=j_regressor,
                                 marker_map=marker_map, data=data)


def shaped_rest(toy, betas):
    """Rest vertices and joint centres for shape coefficients `betas`."""
    verts = toy.v_template + toy.shapedirs @ betas
    return verts, toy.j_regressor @ verts


def write_npz(path, frames=15, width=156, rate=120.0, drop=(), **override):
    rng = np.random.default_rng(3)
    poses = rng.normal(0, 0.3, (frames, width))
    poses[:, :3] = [np.pi / 2, 0.0, 0.0]  # AMASS: body Y up rotated to the world's Z up
    arrays = {"poses": poses, "betas": rng.normal(0, 1, 16),
              "trans": rng.normal(0, 0.2, (frames, 3)) + [0, 0, 0.9],
              "mocap_framerate": np.array(rate), "gender": np.array("neutral")}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if k not in drop})
    return path


def test_pickle_loads_without_chumpy(toy):
    assert importlib.util.find_spec("chumpy") is None and "chumpy" not in sys.modules
    assert b"chumpy.ch" in toy.path.read_bytes()  # the file really references chumpy's class
    data = smpl.load_smpl_model_data(toy.path)
    assert "chumpy" not in sys.modules
    for key in smpl.MODEL_KEYS:
        assert isinstance(data[key], np.ndarray), key
    np.testing.assert_array_equal(data["shapedirs"], toy.shapedirs)
    np.testing.assert_array_equal(data["J_regressor"], toy.j_regressor)
    assert data["bs_style"] == "lbs"


def test_markers_follow_their_bones(toy):
    model = smpl.build_smpl_model(toy.path)
    rng = np.random.default_rng(11)
    frames = 12
    poses = rng.normal(0, 0.5, (frames, 72))
    betas, trans = rng.normal(0, 1, N_BETAS), rng.normal(0, 0.3, (frames, 3))
    markers = smpl.smpl_virtual_markers(model, poses, betas, trans, toy.marker_map, chunk=5)
    assert markers.shape == (frames, len(toy.marker_map), 3)

    verts, joints = shaped_rest(toy, betas)
    for t in range(frames):
        R, centres = forward_kinematics(poses[t], joints)
        for m, entry in enumerate(toy.marker_map.values()):
            j, v = smpl.SMPL_JOINT_NAMES.index(entry["joint"]), entry["vertex"]
            expected = R[j] @ (verts[v] - joints[j]) + centres[j] + trans[t]
            np.testing.assert_allclose(markers[t, m], expected, atol=1e-5, rtol=0)
            # A marker keeps its distance to its own joint centre in every frame.
            assert abs(np.linalg.norm(markers[t, m] - centres[j] - trans[t])
                       - np.linalg.norm(verts[v] - joints[j])) < 1e-5


def test_builtin_marker_map():
    markers = smpl.load_marker_map()
    assert list(markers) == list(json.loads(smpl.DEFAULT_MARKER_MAP.read_text()))
    assert sorted(markers) == sorted(EXPECTED_MARKERS)
    vertices = [e["vertex"] for e in markers.values()]
    assert len(set(vertices)) == len(vertices) and max(vertices) < N_VERTS
    for name in R_SIDED:  # left markers ride on the mirror joint of their right twin
        right, left = markers[name]["joint"], markers["L" + name[1:]]["joint"]
        assert left == right.replace("right_", "left_")
    assert all(e["landmark"] and e["joint"] in smpl.SMPL_JOINT_NAMES for e in markers.values())


def test_trial_from_npz(toy, tmp_path):
    npz = write_npz(tmp_path / "walk_01_poses.npz")
    trial = smpl.load_smpl_trial(npz, "S01", model_path=toy.path)
    assert trial.subject == "S01" and trial.name == "walk_01_poses"
    assert sorted(trial.marker_names) == sorted(EXPECTED_MARKERS)
    assert trial.rate_hz == pytest.approx(120.0)
    np.testing.assert_allclose(trial.markers.index[:3], [0, 1 / 120, 2 / 120])
    assert trial.markers.index.name == "time"

    # OpenSim frame: the AMASS Z-up positions rotated so that Y is up, metres unchanged.
    seq = smpl.read_smpl_sequence(npz)
    raw = smpl.smpl_virtual_markers(smpl.build_smpl_model(toy.path), seq["poses"],
                                    seq["betas"], seq["trans"], toy.marker_map)
    got = trial.marker_array()
    np.testing.assert_allclose(got[..., 0], raw[..., 0], atol=1e-12)
    np.testing.assert_allclose(got[..., 1], raw[..., 2], atol=1e-12)
    np.testing.assert_allclose(got[..., 2], -raw[..., 1], atol=1e-12)
    names = trial.marker_names
    head = got[:, names.index("VRTX"), 1]
    heels = got[:, [names.index("RHEE"), names.index("LHEE")], 1].mean(axis=1)
    assert np.all(head - heels > 1.0)  # an upright body stands along +Y

    same = smpl.load_smpl_trial(npz, "S01", model_path=toy.path, up_axis="y")
    np.testing.assert_allclose(same.marker_array(), raw, atol=1e-12)


def test_model_found_from_environment_folder(toy, tmp_path, monkeypatch):
    npz = write_npz(tmp_path / "t.npz", frames=4)
    monkeypatch.setenv(smpl.MODEL_ENV, str(toy.folder))
    trial = smpl.load_smpl_trial(npz, "S01")
    assert trial.meta["smpl_model"] == str(toy.path)
    monkeypatch.delenv(smpl.MODEL_ENV)
    with pytest.raises(IngestError, match=smpl.MODEL_ENV) as info:
        smpl.load_smpl_trial(npz, "S01")
    assert info.value.trial == "t"


@pytest.mark.parametrize("change, problem", [
    ({"drop": ("trans",)}, "trans"),
    ({"drop": ("mocap_framerate",)}, "mocap_framerate"),
    ({"width": 60}, "poses"),
    ({"trans": np.zeros((9, 3))}, "trans"),
    ({"betas": np.zeros(4)}, "betas"),
    ({"rate": 0.0}, "mocap_framerate"),
])
def test_bad_sequences_raise(toy, tmp_path, change, problem):
    npz = write_npz(tmp_path / "bad.npz", **change)
    with pytest.raises(IngestError, match=problem) as info:
        smpl.load_smpl_trial(npz, "S01", model_path=toy.path)
    assert info.value.file == str(npz)


def test_bad_model_and_map_raise(toy, tmp_path):
    broken = tmp_path / "broken.pkl"
    broken.write_bytes(pickle.dumps({k: v for k, v in toy.data.items()
                                     if k not in ("weights", "shapedirs")}))
    with pytest.raises(IngestError, match=r"\[.shapedirs., .weights.\]") as info:
        smpl.load_smpl_model_data(broken)
    assert info.value.file == str(broken)
    with pytest.raises(IngestError, match="unknown SMPL joint"):
        smpl.load_marker_map({"RASI": {"vertex": 1, "joint": "pelvis_r"}})
    custom = tmp_path / "lab_map.json"
    custom.write_text(json.dumps({"RASI": 4343, "BIG": {"vertex": 7000}}))
    npz = write_npz(tmp_path / "t.npz", frames=3)
    with pytest.raises(IngestError, match="BIG"):
        smpl.load_smpl_trial(npz, "S01", model_path=toy.path, marker_map=custom)
