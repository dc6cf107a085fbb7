"""Quality gates on constructed results with known residuals, tracking errors and GRFs."""
import numpy as np
import pandas as pd
import pytest

from pipeline.quality import GRAVITY, Gates, failed_gates, measure, whole_strides

MASS, HEIGHT = 70.0, 1.75
BW = MASS * GRAVITY


def _case(residual_ty=0.0, moment=0.0, angle_err_deg=0.0, vgrf_bw=1.0, n=50):
    t = pd.Index(np.linspace(0, 1, n), name="time")
    kin = pd.DataFrame({"pelvis_tx_force": 0.0, "pelvis_ty_force": residual_ty * BW,
                        "pelvis_tz_force": 0.0, "pelvis_tilt_moment": moment * BW * HEIGHT,
                        "ground_force_r_vy": vgrf_bw * BW * 0.6,
                        "ground_force_l_vy": vgrf_bw * BW * 0.4}, index=t)
    ref = pd.DataFrame({"knee_angle_r": np.sin(t), "pelvis_tx": np.linspace(0, 1, n)}, index=t)
    tracked = ref.copy()
    tracked["knee_angle_r"] += np.radians(angle_err_deg)
    return kin, tracked, ref


def test_clean_result_passes_with_exact_numbers():
    numbers = measure(*_case(), MASS, HEIGHT)
    assert numbers["residual_force_rms_bw"] == 0 and numbers["max_angle_rmse_deg"] == 0
    assert numbers["mean_vgrf_bw"] == pytest.approx(1.0)
    assert failed_gates(numbers) == []


def test_each_gate_trips_on_its_own_quantity():
    assert "residual force RMS 0.080 BW" in failed_gates(measure(*_case(residual_ty=0.08),
                                                                 MASS, HEIGHT))[0]
    assert "residual moment RMS 0.150" in failed_gates(measure(*_case(moment=0.15),
                                                               MASS, HEIGHT))[0]
    reasons = failed_gates(measure(*_case(angle_err_deg=7.0), MASS, HEIGHT))
    assert reasons == ["tracking RMSE 7.0° at knee_angle_r > 5.0°"]
    assert "mean vertical GRF 0.80 BW" in failed_gates(measure(*_case(vgrf_bw=0.8),
                                                               MASS, HEIGHT))[0]
    assert failed_gates(measure(*_case(vgrf_bw=0.8), MASS, HEIGHT),
                        Gates(check_mean_vgrf=False)) == []


def test_residual_just_under_threshold_passes():
    assert failed_gates(measure(*_case(residual_ty=0.049), MASS, HEIGHT)) == []


def test_mean_vgrf_is_taken_over_whole_strides():
    """A walking-like force: each foot loaded 60% of a 1 s stride, the total averaging exactly
    1 BW over a stride; a trial of 1.3 strides with extra load after 1.15 s averages more
    over the trial, but exactly 1 BW between the left foot's two lift-offs."""
    rate, stride = 1000, 1.0
    t = np.arange(0, 1.3, 1 / rate)
    phase = (t / stride) % 1.0

    def foot(phi):      # half-sine over 60% of the stride, 0 in swing
        return np.where(phi < 0.6, np.sin(np.pi * phi / 0.6), 0.0)

    right, left = foot(phase), foot((phase - 0.5) % 1.0)
    scale = BW / np.mean((right + left)[t < 1.0])
    kin = pd.DataFrame({"ground_force_r_vy": right * scale, "ground_force_l_vy": left * scale},
                       index=pd.Index(t, name="time"))
    kin.loc[kin.index >= 1.15, "ground_force_r_vy"] *= 1.5
    ref = pd.DataFrame({"knee_angle_r": 0.0 * t}, index=kin.index)
    numbers = measure(kin, ref, ref, MASS, HEIGHT)
    # Left lift-offs at 0.1 s and 1.1 s: one whole stride.
    assert numbers["vgrf_strides_s"] == pytest.approx(1.0, abs=2e-3)
    assert numbers["mean_vgrf_bw"] == pytest.approx(1.0, abs=2e-3)
    assert np.mean((kin["ground_force_r_vy"] + kin["ground_force_l_vy"])) / BW > 1.05


def test_a_bounce_is_not_a_stride():
    """A foot lifting for 10 ms at the end of its stance makes no gait event."""
    t = np.arange(0, 1.0, 0.01)
    right = np.where(t < 0.6, 800.0, 0.0)
    right[55] = 0.0                                       # the bounce
    left = np.where((t > 0.5), 800.0, 0.0)
    kin = pd.DataFrame({"ground_force_r_vy": right, "ground_force_l_vy": left},
                       index=pd.Index(t, name="time"))
    assert whole_strides(kin) is None
