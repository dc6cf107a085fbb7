"""Each metric against a value worked out by hand on a two-body model small enough to do FK on
paper: a pelvis sliding along x and tilting about z, and a shank hinged 0.5 m below it."""
import math

import numpy as np
import pandas as pd
import pytest
import torch

from models.dynamics import Multibody
from models.metrics import (
    GRAVITY,
    METRIC_KEYS,
    acceleration_error_mm_per_frame2,
    align_on_time,
    angle_errors_deg,
    contiguous_runs,
    grf_error_bw,
    landmark_names,
    landmark_positions,
    position_error_mm,
    residual_coordinates,
    rotational_coordinates,
    trial_metrics,
    velocity_error_mm_per_frame,
)
from pipeline.errors import ModelError

EYE = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
LINEAR = {"kind": "linear", "slope": 1.0, "intercept": 0.0, "scale": 1.0}
SHANK = 0.4  # m, knee to the ankle marker
MASS = 10.0  # kg


def _coordinate(name, kind):
    return {"name": name, "motion_type": kind, "range": [-5.0, 5.0], "default": 0.0}


def _body(name):
    return {"name": name, "mass": MASS / 2, "com": [0.0, 0.0, 0.0], "inertia": EYE}


def toy_body() -> Multibody:
    desc = {
        "gravity": [0.0, -9.81, 0.0],
        "coordinates": [_coordinate("pelvis_tilt", "rotational"),
                        _coordinate("pelvis_tx", "translational"),
                        _coordinate("knee_angle_r", "rotational")],
        "bodies": [_body("pelvis"), _body("tibia_r")],
        "joints": [
            {"name": "ground_pelvis", "type": "CustomJoint", "parent_body": "ground",
             "child_body": "pelvis", "coordinates": ["pelvis_tilt", "pelvis_tx"],
             "parent_offset": {"R": EYE, "p": [0.0, 0.0, 0.0]},
             "child_offset": {"R": EYE, "p": [0.0, 0.0, 0.0]},
             "axes": [{"type": "rotation", "axis": [0, 0, 1], "coordinate": "pelvis_tilt",
                       "function": LINEAR},
                      {"type": "translation", "axis": [1, 0, 0], "coordinate": "pelvis_tx",
                       "function": LINEAR}]},
            {"name": "knee_r", "type": "CustomJoint", "parent_body": "pelvis",
             "child_body": "tibia_r", "coordinates": ["knee_angle_r"],
             "parent_offset": {"R": EYE, "p": [0.0, -0.5, 0.0]},
             "child_offset": {"R": EYE, "p": [0.0, 0.0, 0.0]},
             "axes": [{"type": "rotation", "axis": [0, 0, 1], "coordinate": "knee_angle_r",
                       "function": LINEAR}]}],
        # RTHI is a soft-tissue marker: never a bony landmark.
        "markers": [{"name": "RASI", "body": "pelvis", "location": [0.0, 0.0, 0.1]},
                    {"name": "RTHI", "body": "pelvis", "location": [0.0, -0.2, 0.1]},
                    {"name": "RANK", "body": "tibia_r", "location": [0.0, -SHANK, 0.0]}],
    }
    return Multibody.from_tree(desc, torch.float64)


def _kinematics(n=10, **columns) -> pd.DataFrame:
    time = np.arange(n) / 100.0
    data = {c: np.zeros(n) for c in ("pelvis_tilt", "pelvis_tx", "knee_angle_r")}
    data.update({k: np.broadcast_to(v, n).astype(float) for k, v in columns.items()})
    return pd.DataFrame(data, index=pd.Index(time, name="time"))


def _kinetics(n=10, **columns) -> pd.DataFrame:
    names = ["pelvis_tilt_moment", "pelvis_tx_force", "knee_angle_r_moment",
             *[f"ground_force_{s}_v{a}" for s in "rl" for a in "xyz"]]
    data = {c: np.full(n, 3.0) for c in names}
    data.update({k: np.broadcast_to(v, n).astype(float) for k, v in columns.items()})
    return pd.DataFrame(data, index=pd.Index(np.arange(n) / 100.0, name="time"))


def test_landmarks_by_forward_kinematics_by_hand():
    body = toy_body()
    assert landmark_names(body) == ["RASI", "RANK"]  # RTHI is soft tissue
    pts = landmark_positions(body, _kinematics(1, pelvis_tx=0.1, knee_angle_r=math.pi / 2))
    # The knee at (0.1, -0.5, 0); the shank turned +90 deg about z swings (0, -0.4, 0) to
    # (0.4, 0, 0).
    np.testing.assert_allclose(pts[0], [[0.1, 0.0, 0.1], [0.5, -0.5, 0.0]], atol=1e-12)


def test_landmarks_need_a_shared_coordinate_and_a_landmark():
    with pytest.raises(ModelError, match="share no coordinate"):
        landmark_positions(toy_body(), pd.DataFrame({"hip_flexion_r": [0.0]}))
    with pytest.raises(ModelError, match="none of the bony landmarks"):
        landmark_positions(toy_body(), _kinematics(1), landmarks=("C7",))


def test_position_error_by_hand():
    body = toy_body()
    ref = landmark_positions(body, _kinematics())
    # A 1 cm slide moves both landmarks 10 mm.
    shifted = landmark_positions(body, _kinematics(pelvis_tx=0.01))
    assert position_error_mm(shifted, ref) == pytest.approx(10.0, abs=1e-9)
    # A knee error of 0.2 rad moves only the ankle, by the chord 2 * 0.4 * sin(0.1).
    bent = landmark_positions(body, _kinematics(knee_angle_r=0.2))
    assert position_error_mm(bent, ref) == pytest.approx(
        0.5 * 2 * SHANK * math.sin(0.1) * 1e3, rel=1e-12)


def test_velocity_and_acceleration_errors_by_hand():
    body = toy_body()
    n = 10
    ref = landmark_positions(body, _kinematics(n))
    # Sliding 1 mm per frame: every landmark's velocity is off by 1 mm/frame, acceleration by 0.
    slide = landmark_positions(body, _kinematics(n, pelvis_tx=1e-3 * np.arange(n)))
    assert velocity_error_mm_per_frame(slide, ref) == pytest.approx(1.0, rel=1e-12)
    assert acceleration_error_mm_per_frame2(slide, ref) == pytest.approx(0.0, abs=1e-9)
    # x = 0.5 mm * t^2: acceleration 1 mm/frame^2; velocity (t+1)^2/2 - t^2/2 = t + 1/2, whose
    # mean over t = 0..n-2 is (n - 1)/2.
    t = np.arange(n)
    accel = landmark_positions(body, _kinematics(n, pelvis_tx=0.5e-3 * t**2))
    assert acceleration_error_mm_per_frame2(accel, ref) == pytest.approx(1.0, rel=1e-9)
    assert velocity_error_mm_per_frame(accel, ref) == pytest.approx((n - 1) / 2, rel=1e-9)


def test_differences_stay_inside_contiguous_runs():
    time = np.array([0.0, 0.01, 0.02, 0.10, 0.11, 0.12])
    runs = contiguous_runs(time)
    assert runs == [slice(0, 3), slice(3, 6)]
    ref = np.zeros((6, 1, 3))
    pred = ref.copy()
    pred[3:, 0, 0] = 0.05  # a constant 5 cm offset after the gap: no velocity error inside runs
    assert velocity_error_mm_per_frame(pred, ref, runs) == 0.0
    assert velocity_error_mm_per_frame(pred, ref) == pytest.approx(50.0 / 5)


def test_angle_error_only_rotations_and_wrapped():
    body = toy_body()
    names = ["pelvis_tilt", "pelvis_tx", "knee_angle_r"]
    assert rotational_coordinates(body, names) == ["pelvis_tilt", "knee_angle_r"]
    assert rotational_coordinates(None, ["pelvis_ty", "hip_flexion_r"]) == ["hip_flexion_r"]
    ref = _kinematics(pelvis_tilt=math.radians(179.0))
    pred = _kinematics(pelvis_tilt=math.radians(-179.0), knee_angle_r=0.1, pelvis_tx=3.0)
    errors = angle_errors_deg(pred, ref, rotational_coordinates(body, names))
    assert errors["pelvis_tilt"] == pytest.approx(2.0)
    assert errors["knee_angle_r"] == pytest.approx(math.degrees(0.1))


def test_grf_error_in_body_weights_by_hand():
    ref = _kinetics()
    # 98.0665 N too much vertical force on the right foot = 1 BW of a 10 kg subject, on one of
    # six components.
    pred = _kinetics(ground_force_r_vy=3.0 + MASS * GRAVITY)
    assert grf_error_bw(pred, ref, MASS) == pytest.approx(1 / 6, rel=1e-12)
    with pytest.raises(ValueError, match="mass"):
        grf_error_bw(pred, ref, 0.0)


def test_trial_metrics_by_hand_and_residuals_left_out():
    body = toy_body()
    assert residual_coordinates(body, ["pelvis_tilt", "pelvis_tx", "knee_angle_r"]) == [
        "pelvis_tilt", "pelvis_tx"]
    ref = {"kinematics": _kinematics(), "kinetics": _kinetics()}
    # The pelvis residuals are wildly off; the knee moment by 5 N*m = 0.5 N*m/kg.
    pred = {"kinematics": _kinematics(pelvis_tx=0.01).reset_index(),
            "kinetics": _kinetics(pelvis_tilt_moment=500.0, pelvis_tx_force=-900.0,
                                  knee_angle_r_moment=8.0).reset_index()}
    m = trial_metrics(pred, ref, body, MASS)
    assert m["frames"] == 10
    assert m["mae_torque_nm_per_kg"] == pytest.approx(0.5)
    assert m["torque_nm_per_kg"] == {"knee_angle_r": pytest.approx(0.5)}
    assert m["mpblpe_mm"] == pytest.approx(10.0)
    assert m["mae_angle_deg"] == pytest.approx(0.0, abs=1e-12)  # a slide is not an angle
    assert m["vel_err_mm_per_frame"] == pytest.approx(0.0, abs=1e-9)
    assert m["mae_grf_bw"] == 0.0


def test_identical_predictions_score_zero_on_every_metric():
    body = toy_body()
    t = np.arange(20) / 100.0
    kin = _kinematics(20, pelvis_tilt=0.3 * np.sin(5 * t), pelvis_tx=0.2 * t,
                      knee_angle_r=np.cos(3 * t))
    ref = {"kinematics": kin, "kinetics": _kinetics(20, knee_angle_r_moment=40 * np.sin(t))}
    m = trial_metrics({k: v.copy() for k, v in ref.items()}, ref, body, 70.0)
    for key in METRIC_KEYS:
        assert m[key] == pytest.approx(0.0, abs=1e-12), key


def test_alignment_on_time():
    ref = _kinematics(5)
    # The prediction covers more frames, in another order, with rounding jitter in its times.
    pred = _kinematics(8, knee_angle_r=np.arange(8.0)).iloc[::-1]
    pred.index = pred.index + 1e-9
    p, r = align_on_time(pred, ref)
    assert list(r.index) == list(ref.index) and list(p.index) == list(ref.index)
    np.testing.assert_array_equal(p["knee_angle_r"], np.arange(5.0))
    # A prediction half a frame off matches nothing.
    late = _kinematics(5)
    late.index = late.index + 0.005
    assert len(align_on_time(late, ref)[1]) == 0


def test_a_prediction_missing_a_reference_column_is_an_error():
    body = toy_body()
    ref = {"kinematics": _kinematics(), "kinetics": _kinetics()}
    with pytest.raises(ValueError, match="knee_angle_r_moment"):
        trial_metrics({"kinematics": _kinematics(),
                       "kinetics": _kinetics().drop(columns="knee_angle_r_moment")}, ref, body, MASS)
    with pytest.raises(ValueError, match="knee_angle_r"):
        trial_metrics({"kinematics": _kinematics().drop(columns="knee_angle_r"),
                       "kinetics": _kinetics()}, ref, body, MASS)
