"""Scaling with OpenSim's ScaleTool: a 1.70 m / 65 kg built-in model scaled to markers from a
1.85 m / 80 kg built-in model must reproduce that model's size, mass and markers."""
import numpy as np
import opensim
import pandas as pd
import pytest

from osim.builtin_model import build_model
from osim.markers import BONY_LANDMARKS, MARKER_NAMES
from osim.scale import Measurement, load_lab_model, scale_model
from pipeline.errors import ModelError
from pipeline.ingest import load_trial
from pipeline.trial import marker_columns

SOFT_TISSUE = sorted(set(MARKER_NAMES) - set(BONY_LANDMARKS))
# Where the "true" subject stands in the static trial: 0.5 m forward, turned 0.3 rad.
POSE = {"pelvis_tx": 0.5, "pelvis_tz": -0.2, "pelvis_rotation": 0.3}


def _pose(model, values):
    state = model.initSystem()
    coords = model.getCoordinateSet()
    for name, value in values.items():
        coords.get(name).setValue(state, value, False)
    model.realizePosition(state)
    return state


def _markers(model, state) -> pd.DataFrame:
    ms = model.getMarkerSet()
    names = [ms.get(i).getName() for i in range(ms.getSize())]
    xyz = np.array([ms.get(i).getLocationInGround(state).to_numpy() for i in range(ms.getSize())])
    return pd.DataFrame(xyz.reshape(1, -1), columns=marker_columns(names))


def _static(model, frames=5, noise_m=0.0, seed=0) -> pd.DataFrame:
    """Static trial from the model's forward kinematics at POSE: `frames` frames at 100 Hz."""
    one = _markers(model, _pose(model, POSE)).to_numpy()
    rng = np.random.default_rng(seed)
    data = np.repeat(one, frames, axis=0) + rng.normal(0.0, noise_m, (frames, one.shape[1]))
    cols = _markers(model, _pose(model, {})).columns
    return pd.DataFrame(data, index=pd.Index(np.arange(frames) / 100.0, name="time"),
                        columns=cols)


def _centres(model) -> dict:
    """Joint centres (m, ground) at the default pose, keyed by joint name."""
    state = _pose(model, {})
    return {j.getName(): j.getChildFrame().getPositionInGround(state).to_numpy()
            for j in model.getJointSet()}


def _lengths(model) -> dict:
    c = _centres(model)
    d = {"thigh_r": ("hip_r", "knee_r"), "shank_r": ("knee_r", "ankle_r"),
         "thigh_l": ("hip_l", "knee_l"), "shank_l": ("knee_l", "ankle_l"),
         "hip_width": ("hip_r", "hip_l"), "upper_arm_r": ("acromial_r", "elbow_r"),
         "forearm_r": ("elbow_r", "radius_hand_r"), "foot_r": ("subtalar_r", "mtp_r"),
         "shoulder_width": ("acromial_r", "acromial_l"), "trunk": ("back", "acromial_r")}
    return {k: float(np.linalg.norm(c[a] - c[b])) for k, (a, b) in d.items()}


@pytest.fixture(scope="module")
def subjects():
    return build_model(1.70, 65.0, "M"), build_model(1.85, 80.0, "M")


@pytest.fixture(scope="module")
def scaled(subjects, tmp_path_factory):
    generic, true = subjects
    return scale_model(generic, _static(true), 80.0, workdir=tmp_path_factory.mktemp("scale"))


def test_mass_is_the_subjects_with_the_generic_distribution(subjects, scaled):
    generic, _ = subjects
    model, report = scaled
    assert report["total_mass_kg"] == pytest.approx(80.0, rel=1e-6)
    ratio = {b.getName(): b.getMass() / generic.getBodySet().get(b.getName()).getMass()
             for b in model.getBodySet()}
    assert np.allclose(list(ratio.values()), 80.0 / 65.0, rtol=1e-9)
    assert generic.getTotalMass(generic.initSystem()) == pytest.approx(65.0)  # input untouched


def test_segment_lengths_match_the_true_subject(subjects, scaled):
    _, true = subjects
    model, report = scaled
    got, want = _lengths(model), _lengths(true)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=0.02), name
    # Every body was measured (no inheritance needed with Plug-in Gait markers) at about 1.85/1.70.
    assert report["inherited"] == {}
    factors = np.array(list(report["scale_factors"].values()))
    assert np.allclose(factors, 1.85 / 1.70, rtol=0.02)
    assert report["measurements"]["thigh"]["pairs"][0] == ["RASI", "RKNE"]


def test_scaled_model_reproduces_the_static_markers(subjects, scaled):
    _, true = subjects
    model, report = scaled
    assert report["marker_rmse_m"] < 0.01
    assert report["landmark_rmse_m"] < 0.01
    assert report["marker_max_error_m"] < 0.01
    # Independent of the tool's own static-pose IK: put the scaled model in the true pose.
    ty = true.getCoordinateSet().get("pelvis_ty").getDefaultValue()
    ref = _markers(true, _pose(true, POSE)).to_numpy().reshape(-1, 3)
    got = _markers(model, _pose(model, {**POSE, "pelvis_ty": ty})).to_numpy().reshape(-1, 3)
    rmse = np.sqrt(np.mean(np.sum((got - ref) ** 2, axis=1)))
    assert rmse < 0.01
    assert model.getMarkerSet().getSize() == len(MARKER_NAMES)


def test_only_soft_tissue_markers_move(subjects, scaled):
    generic, _ = subjects
    model, report = scaled
    assert report["markers_moved"] == SOFT_TISSUE
    femur = report["scale_factors"]["femur_r"]
    before = generic.getMarkerSet().get("RKNE").get_location().to_numpy()
    after = model.getMarkerSet().get("RKNE").get_location().to_numpy()
    assert np.allclose(after, before * femur, atol=1e-5)     # scaled, not moved
    assert not model.getMarkerSet().get("RTHI").get_fixed()  # flags as in the input model


def test_contact_spheres_follow_the_feet(subjects, scaled):
    _, true = subjects
    model, _ = scaled
    for name in ("heel_r", "medialMidfoot_l", "medialToe_r"):
        got = model.getContactGeometrySet().get(name)
        want = true.getContactGeometrySet().get(name)
        assert np.allclose(opensim.ContactSphere.safeDownCast(got).get_location().to_numpy(),
                           opensim.ContactSphere.safeDownCast(want).get_location().to_numpy(),
                           rtol=0.02, atol=1e-4)


def test_noisy_markers_with_lab_names_gaps_and_missing_markers(subjects, tmp_path):
    generic, true = subjects
    static = _static(true, frames=10, noise_m=0.002, seed=1)
    static.loc[static.index[:7], ["RTOE_x", "RTOE_y", "RTOE_z"]] = np.nan     # mostly missing
    static.loc[static.index[3:5], ["LKNE_x", "LKNE_y", "LKNE_z"]] = np.nan    # short gap
    static = static.drop(columns=["VRTX_x", "VRTX_y", "VRTX_z"])
    lab = {"RASI": "R.ASIS", "LASI": "L.ASIS", "RKNE": "R.Knee", "LKNE": "L.Knee"}
    static.columns = marker_columns([lab.get(n, n) for n in
                                     [c[:-2] for c in static.columns[::3]]])
    extra = pd.DataFrame(0.0, index=static.index, columns=marker_columns(["EXTRA"]))
    static = pd.concat([static, extra], axis=1)
    inverse = {v: k for k, v in lab.items()}
    model, report = scale_model(generic, static, 80.0, marker_map=inverse,
                                marker_weights={"R.ASIS": 20.0}, workdir=tmp_path)
    assert report["markers_dropped"] == {"RTOE": "seen in 30% of the static frames",
                                         "EXTRA": "not on the model"}
    assert report["markers_missing"] == ["VRTX"]
    assert report["markers_restored"] == ["RTOE", "VRTX"]      # back, with scaled offsets
    assert "LKNE" in report["markers_used"]
    assert model.getMarkerSet().getSize() == len(MARKER_NAMES)
    got, want = _lengths(model), _lengths(true)
    for name in want:
        assert got[name] == pytest.approx(want[name], rel=0.02), name
    assert report["landmark_rmse_m"] < 0.01
    assert report["total_mass_kg"] == pytest.approx(80.0, rel=1e-6)
    assert 'weight>20.0<' in (tmp_path / "setup_scale.xml").read_text().replace(" ", "")


def test_one_frame_and_explicit_measurement(subjects, tmp_path):
    generic, true = subjects
    only_thigh = [Measurement("thigh", (("RASI", "RKNE"), ("LASI", "LKNE")),
                              {"femur_r": "X Y Z", "femur_l": "X Y Z"})]
    model, report = scale_model(generic, _static(true, frames=1), 80.0,
                                measurements=only_thigh, move_markers="none",
                                workdir=tmp_path)
    thigh = report["measurements"]["thigh"]["factor"]
    assert thigh == pytest.approx(_lengths(true)["thigh_r"] / _lengths(generic)["thigh_r"],
                                  rel=0.01)
    # Every other body inherits the thigh's factor through the joints.
    assert set(report["inherited"]) == {b.getName() for b in model.getBodySet()} - {
        "femur_r", "femur_l"}
    assert np.allclose(list(report["scale_factors"].values()), thigh)
    assert report["markers_moved"] == []


def test_lab_model_on_a_walking_frame(walking_dir, tmp_path):
    # A walking frame is not a static pose: only check that a lab model with its own marker
    # names scales, keeps its mass, and fits the frame to a few centimetres.
    model = load_lab_model(walking_dir / "subject_walk_scaled.osim")
    mass = model.getTotalMass(model.initSystem())
    trial = load_trial(walking_dir / "markers_walk.trc", subject="walk")
    scaled, report = scale_model(model, trial.markers, mass, time_range=(0.0, 0.1),
                                 workdir=tmp_path)
    assert report["total_mass_kg"] == pytest.approx(mass, rel=1e-6)
    assert scaled.getTotalMass(scaled.initSystem()) == pytest.approx(mass, rel=1e-6)
    assert report["measurements"]["femur_r"]["pairs"] == [["R.ASIS", "R.Knee"]]
    assert report["measurements"]["tibia_r"]["pairs"] == [["R.Knee", "R.Ankle"]]
    assert 0.85 < min(f[0] for f in report["scale_factors"].values())
    assert max(f[0] for f in report["scale_factors"].values()) < 1.15
    assert report["landmark_rmse_m"] < 0.03
    assert report["marker_max_error_m"] < 0.05
    assert scaled.getMarkerSet().getSize() == model.getMarkerSet().getSize()


# -- bad input ------------------------------------------------------------------------------------
def test_too_few_markers_names_the_missing_ones(subjects, tmp_path):
    generic, true = subjects
    static = _static(true)
    static.columns = [c if c[:-2] in ("RASI", "LASI", "SACR") else "lab" + c
                      for c in static.columns]
    with pytest.raises(ModelError, match=r"only 3 static markers match.*missing from the "
                                         r"trial: .*RKNE") as err:
        scale_model(generic, static, 80.0, trial="static01", workdir=tmp_path)
    assert "trial static01" in str(err.value)
    assert "subject.json" in err.value.hint


def test_all_nan_static_trial(subjects, tmp_path):
    generic, true = subjects
    static = _static(true) * np.nan
    static.attrs["source"] = "raw/s01/static.c3d"
    with pytest.raises(ModelError, match=r"no marker positions \(all NaN\).*static.c3d"):
        scale_model(generic, static, 80.0, workdir=tmp_path)


def test_bad_mass_and_empty_time_range(subjects, tmp_path):
    generic, true = subjects
    with pytest.raises(ModelError, match="mass"):
        scale_model(generic, _static(true), -3.0, workdir=tmp_path)
    with pytest.raises(ModelError, match="no static frames in time range 5.0-6.0 s"):
        scale_model(generic, _static(true), 80.0, time_range=(5.0, 6.0), workdir=tmp_path)


def test_lab_model_that_does_not_load(tmp_path):
    with pytest.raises(ModelError, match="model file not found"):
        load_lab_model(tmp_path / "missing.osim")
    broken = tmp_path / "broken.osim"
    broken.write_text("<OpenSimDocument><Model name='x'><BodySet><objects><Body name='b'>"
                      "<mass>oops</mass></Body></objects></BodySet>")
    with pytest.raises(ModelError, match="OpenSim cannot load the model") as err:
        load_lab_model(broken)
    assert err.value.file == str(broken)
