"""Quality gates on constructed results with known residuals, tracking errors and GRFs."""
import numpy as np
import pandas as pd
import pytest

from pipeline.quality import GRAVITY, Gates, failed_gates, measure

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
