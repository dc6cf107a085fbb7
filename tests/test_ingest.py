"""load_trial: C3D and TRC(+_grf.mot) into a Trial in OpenSim's frame; signal conditioning."""
import sys
import types

import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import convert_c3d
from pipeline.c3d import lab_to_opensim, read_c3d
from pipeline.errors import IngestError
from pipeline.foot_grf import grf_columns
from pipeline.ingest import load_trial
from pipeline.opensim_files import read_mot, read_trc, write_trc
from pipeline.signal import fill_gaps, gap_table, lowpass, resample
from pipeline.trial import Trial


@pytest.fixture
def walking5(c3d_dir):
    return c3d_dir / "walking5.c3d"


def test_c3d_trial_is_in_opensim_frame(walking5):
    trial = load_trial(walking5, subject="s01")
    rec = read_c3d(walking5)
    assert isinstance(trial, Trial) and (trial.subject, trial.name) == ("s01", "walking5")
    assert trial.meta["up_axis"] == "z" and trial.meta["up_axis_detected"]
    assert trial.rate_hz == pytest.approx(250.0)
    lab = rec.markers.to_numpy().reshape(len(rec.markers), -1, 3)
    # (x, y, z)_lab -> (x, z, -y): lab Z up becomes OpenSim's Y up, still metres.
    np.testing.assert_allclose(trial.marker_array(), lab[..., [0, 2, 1]] * [1, 1, -1])
    standing = trial.markers.loc[2.0:3.0]
    assert 1.3 < np.nanmedian(standing["C7_y"]) < 1.7  # C7 at shoulder height
    assert np.nanmin(standing[["RMT1_y", "LMT1_y"]].to_numpy()) < 0.08  # toes on the floor


def test_plates_are_given_to_the_right_feet(walking5):
    trial = load_trial(walking5)
    contacts = trial.meta["contacts"]
    assert [(c["label"], c["side"]) for c in contacts] == [("plate1", "l"), ("plate2", "r")]
    assert all(c["distance_m"] < 0.1 for c in contacts)
    # The same with the foot markers named explicitly, and with a substring list.
    named = load_trial(walking5, foot_markers={"r": ["RCAL", "RMT1"], "l": ["LCAL", "LMT1"]})
    assert [c["side"] for c in named.meta["contacts"]] == ["l", "r"]
    assert [c["side"] for c in load_trial(walking5, foot_markers=["CAL"]).meta["contacts"]] \
        == ["l", "r"]
    with pytest.raises(IngestError, match="no foot markers"):
        load_trial(walking5, foot_markers={"r": [], "l": []})


def test_foot_grf_follows_the_plates_at_marker_times(walking5):
    trial = load_trial(walking5)
    rec = read_c3d(walking5)
    rot = lab_to_opensim("z")
    grf = trial.grf
    assert list(grf.columns) == grf_columns("r") + grf_columns("l")
    np.testing.assert_array_equal(grf.index, trial.markers.index)
    samples = np.arange(len(grf)) * 8  # analog samples at the marker times (2000 / 250 Hz)
    for side, plate in (("l", rec.plates[0]), ("r", rec.plates[1])):
        force = grf[[f"ground_force_{side}_v{a}" for a in "xyz"]].to_numpy()
        cop = grf[[f"ground_force_{side}_p{a}" for a in "xyz"]].to_numpy()
        torque = grf[[f"ground_torque_{side}_{a}" for a in "xyz"]].to_numpy()
        on = force[:, 1] >= 20.0
        assert 100 < on.sum() < 160  # about 0.5 s of stance at 250 Hz
        expected = plate.force[samples] @ rot.T
        err = force[on] - expected[on]  # differences: only the 100 Hz anti-alias filter
        assert np.sqrt((err ** 2).mean()) < 3.0 and np.abs(err).max() < 10.0
        firm = plate.vertical_force[samples] > 100
        np.testing.assert_allclose(cop[firm], (plate.cop[samples] @ rot.T)[firm], atol=5e-3)
        np.testing.assert_allclose(cop[on, 1], 0.0, atol=1e-9)  # on the floor, Y = 0
        np.testing.assert_allclose(torque[on][:, [0, 2]], 0.0, atol=1e-6)  # free moment: Y only
        # Off the plates: no force, no torque, CoP undefined.
        assert (force[~on] == 0).all() and (torque[~on] == 0).all() and np.isnan(cop[~on]).all()


def test_trc_and_grf_mot_give_the_same_trial(walking5, tmp_path):
    """convert's files read back through the TRC path give the C3D path's trial."""
    from_c3d = load_trial(walking5)
    for columns in ("foot", "plate"):
        out = tmp_path / columns
        convert_c3d(walking5, out, columns=columns)
        from_trc = load_trial(out / "walking5.trc")
        assert from_trc.meta["format"] == "trc" and from_trc.meta["up_axis"] == "y"
        np.testing.assert_allclose(from_trc.markers.to_numpy(), from_c3d.markers.to_numpy(),
                                   atol=1e-9)
        contacts = sorted(from_trc.meta["contacts"], key=lambda c: c["start_s"])
        assert [c["side"] for c in contacts] == ["l", "r"]
        a, b = from_trc.grf.to_numpy(), from_c3d.grf.to_numpy()
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(a, b, atol=1e-6, equal_nan=True)


def test_opensim_example_trc_with_grf_mot(walking_dir, tmp_path):
    """OpenSim's own walking trial (100 Hz markers, per-foot GRF at 2000 Hz) as lab files."""
    (tmp_path / "walk.trc").symlink_to(walking_dir / "markers_walk.trc")
    (tmp_path / "walk_grf.mot").symlink_to(walking_dir / "grf_walk.mot")
    trial = load_trial(tmp_path / "walk.trc")
    assert trial.meta["up_axis"] == "y" and len(trial.marker_names) == 41
    assert trial.markers.index[-1] == pytest.approx(2.37)
    sides = sorted((c["start_s"], c["side"]) for c in trial.meta["contacts"])
    assert [s for _, s in sides] == ["r", "l", "r"]
    ref = read_mot(walking_dir / "grf_walk.mot").reindex(trial.grf.index, method="nearest")
    for side in ("r", "l"):
        on = trial.grf[f"ground_force_{side}_vy"] > 100
        assert on.sum() > 50
        for col, tol in ((f"ground_force_{side}_vy", 1.0), (f"ground_force_{side}_px", 1e-3),
                         (f"ground_force_{side}_pz", 1e-3), (f"ground_torque_{side}_y", 0.05)):
            assert np.abs(trial.grf[col] - ref[col])[on].max() < tol, col


def test_trc_up_axis_and_units(walking5, tmp_path):
    """A TRC left in a Z-up lab frame, in cm: detected and rotated, converted to metres."""
    rec = read_c3d(walking5)
    path = tmp_path / "lab.trc"
    write_trc(path, rec.markers * 100.0, units="cm", data_rate=250.0)
    trial = load_trial(path)
    assert trial.meta["up_axis"] == "z" and trial.grf is None
    lab = rec.markers.to_numpy().reshape(len(rec.markers), -1, 3)
    np.testing.assert_allclose(trial.marker_array(), lab @ lab_to_opensim("z").T, atol=1e-9)
    kept = load_trial(path, up_axis="y")  # told: nothing turned
    np.testing.assert_allclose(kept.markers.to_numpy(), rec.markers.to_numpy(), atol=1e-9)
    bad = tmp_path / "bad.trc"
    write_trc(bad, rec.markers, units="furlongs", data_rate=250.0)
    with pytest.raises(IngestError, match="furlongs"):
        load_trial(bad)
    empty = tmp_path / "nan.trc"
    write_trc(empty, rec.markers * np.nan, units="m", data_rate=250.0)
    with pytest.raises(IngestError, match="every marker is missing"):
        load_trial(empty)
    assert read_trc(path).attrs["units"] == "cm"


def test_dispatch(tmp_path, monkeypatch):
    with pytest.raises(IngestError, match="file not found"):
        load_trial(tmp_path / "nope.c3d")
    (tmp_path / "t.xls").write_text("x")
    with pytest.raises(IngestError, match="unsupported trial file type"):
        load_trial(tmp_path / "t.xls")
    npz = tmp_path / "walk.npz"
    np.savez(npz, poses=np.zeros((2, 72)))
    monkeypatch.setitem(sys.modules, "pipeline.smpl", types.ModuleType("pipeline.smpl"))
    with pytest.raises(IngestError, match="SMPL"):
        load_trial(npz)
    fake = types.ModuleType("pipeline.smpl")
    fake.load_smpl_trial = lambda path, **kw: ("smpl", path.name, kw["subject"])
    monkeypatch.setitem(sys.modules, "pipeline.smpl", fake)
    assert load_trial(npz, subject="s02") == ("smpl", "walk.npz", "s02")


def test_filters_and_options(walking5):
    raw = load_trial(walking5)
    smooth = load_trial(walking5, marker_cutoff_hz=6.0, grf_cutoff_hz=15.0, threshold_n=50.0)
    assert smooth.meta["marker_cutoff_hz"] == 6.0
    np.testing.assert_array_equal(smooth.markers.isna(), raw.markers.isna())  # gaps kept
    diff = np.abs(smooth.markers.to_numpy() - raw.markers.to_numpy())
    # Smoothing, not distortion (the largest changes sit at the ends of a marker's runs).
    assert 0 < np.nanmedian(diff) < 2e-3 and np.nanpercentile(diff, 99) < 0.02
    vy = smooth.grf["ground_force_r_vy"]
    assert vy[(vy > 0)].min() >= 50.0
    rough = raw.grf["ground_force_r_vy"]
    stance = ((vy > 0) & (rough > 0)).to_numpy()
    jerk = [np.abs(np.diff(x.to_numpy()[stance], 2)).mean() for x in (vy, rough)]
    assert jerk[0] < 0.7 * jerk[1]  # 15 Hz takes out the wiggles of the 100 Hz anti-alias


# ------------------------------------------------------------------------ pipeline.signal

def test_lowpass_is_zero_lag_and_nan_aware():
    rate, t = 250.0, np.arange(500) / 250.0
    slow = np.sin(2 * np.pi * 2 * t)
    x = slow + 0.2 * np.sin(2 * np.pi * 60 * t)
    y = lowpass(x, rate, 6.0)
    np.testing.assert_allclose(y[100:-100], slow[100:-100], atol=3e-3)  # no lag, noise gone
    gappy = x.copy()
    gappy[200:220] = np.nan
    z = lowpass(np.column_stack([gappy, x]), rate, 6.0)
    assert np.isnan(z[200:220, 0]).all() and np.isfinite(z[:, 1]).all()
    np.testing.assert_allclose(z[:200, 0], lowpass(x[:200], rate, 6.0))  # runs filtered alone
    np.testing.assert_allclose(z[:, 1], y)
    with pytest.raises(ValueError):
        lowpass(x, rate, 200.0)


def test_resample_antialiases_and_interpolates():
    t = np.arange(2001) / 2000.0
    new = np.arange(251) / 250.0
    ramp = resample(3.0 * t + 1.0, t, new, antialias=False)
    np.testing.assert_allclose(ramp, 3.0 * new + 1.0, atol=1e-12)
    # 240 Hz aliases to 10 Hz at 250 Hz without the low-pass; with it, it vanishes.
    hum = np.sin(2 * np.pi * 240 * t)
    assert np.abs(resample(hum, t, new, antialias=False)).max() > 0.5
    assert np.abs(resample(hum, t, new)[25:-25]).max() < 0.01
    # Outside the source span: NaN; a NaN sample does not spoil exact hits beside it.
    x = t.copy()
    x[9] = np.nan
    out = resample(x, t, np.array([-0.1, 0.004, 0.00425, 0.00375]), antialias=False)
    assert np.isnan(out[0]) and np.isnan(out[2])
    assert out[1] == pytest.approx(0.004) and out[3] == pytest.approx(0.00375)


def test_gap_table_and_fill():
    t = np.arange(10) / 100.0
    m = pd.DataFrame({"A_x": t, "A_y": t, "A_z": t, "B_x": t, "B_y": t, "B_z": t},
                     index=pd.Index(t, name="time"))
    m.loc[m.index[2:5], "A_y"] = np.nan
    m.loc[m.index[7], "A_x"] = np.nan
    m.loc[m.index[0], "B_z"] = np.nan
    gaps = gap_table(m)
    assert gaps.loc["A"].tolist() == [4, 2, 3, pytest.approx(0.03)]
    assert gaps.loc["B", "missing_frames"] == 1
    col = np.sin(np.arange(40) / 5.0)
    holes = col.copy()
    holes[[10, 11, 0]] = np.nan
    holes[20:30] = np.nan
    filled = fill_gaps(holes, max_gap=3)
    np.testing.assert_allclose(filled[10:12], col[10:12], atol=2e-3)  # short gap: spline
    assert np.isnan(filled[0]) and np.isnan(filled[20:30]).all()  # edge and long gap stay
