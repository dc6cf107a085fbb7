"""C3D reading against OpenSim's own conversion of walking5.c3d, force-plate types, bad files."""
from pathlib import Path

import ezc3d
import numpy as np
import opensim
import pandas as pd
import pytest

from pipeline.c3d import detect_up_axis, lab_to_opensim, read_c3d, save_c3d
from pipeline.errors import IngestError


def _sto(path: Path) -> pd.DataFrame:
    """OpenSim's pre-4.0 .sto (name/datacolumns/datarows/range/endheader, then labels)."""
    return pd.read_csv(path, sep=r"\s+", skiprows=5)


def _copy(src: Path, dst: Path, edit) -> Path:
    """A modified copy of a C3D written by ezc3d."""
    c = ezc3d.c3d(str(src))
    edit(c)
    save_c3d(c, dst)
    return dst


@pytest.fixture
def walking5(c3d_dir):
    return c3d_dir / "walking5.c3d"


def test_markers_match_opensim_conversion(c3d_dir, walking5):
    rec = read_c3d(walking5)
    assert (rec.point_rate, rec.analog_rate, rec.units, rec.n_frames) == (250.0, 2000.0, "mm",
                                                                           1103)
    ref = opensim.TimeSeriesTableVec3(str(c3d_dir / "std_walking5_markers.trc"))
    labels = list(ref.getColumnLabels())
    assert sorted(labels) == sorted(rec.meta["marker_labels"])
    flat = ref.flatten()
    expected = flat.getMatrix().to_numpy()  # mm, lab frame, every 10th frame plus the last
    frames = np.round(np.array(flat.getIndependentColumn()) * 250).astype(int)
    assert frames[-1] == 1102 and frames[1] == 10
    cols = [f"{name}_{a}" for name in labels for a in "xyz"]
    ours = rec.markers[cols].to_numpy()[frames] * 1000.0
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(expected))  # same gaps
    assert np.isnan(ours).any() and np.isfinite(ours).any()
    assert np.nanmax(np.abs(ours - expected)) < 0.1


@pytest.mark.parametrize("reference,at_cop", [("std_walking5_grfs.sto", False),
                                              ("std_cop_walking5_grfs.sto", True)])
def test_force_plates_match_opensim_conversion(c3d_dir, walking5, reference, at_cop):
    rec = read_c3d(walking5)
    ref = _sto(c3d_dir / reference)  # f N, p mm, m N·mm; every 100th sample plus the last
    samples = np.round(ref.time.to_numpy() * rec.analog_rate).astype(int)
    assert samples[-1] == 8823
    assert [p.type for p in rec.plates] == [2, 2]
    for plate in rec.plates:
        k = plate.index
        f, p, m = (ref[[f"{q}{k}_{i}" for i in (1, 2, 3)]].to_numpy() for q in "fpm")
        loaded = plate.loaded[samples]
        assert loaded.sum() >= 10 and (~loaded).sum() >= 10
        np.testing.assert_allclose(plate.force[samples], f, atol=1.0)  # everywhere
        if at_cop:
            pos, moment = plate.cop[samples] * 1e3, plate.free_moment[samples] * 1e3
            assert np.isnan(pos[~loaded]).all()  # CoP undefined below the threshold
        else:
            pos = np.broadcast_to(plate.centre * 1e3, f.shape)
            moment = plate.moment[samples] * 1e3
        np.testing.assert_allclose(pos[loaded], p[loaded], atol=1.0)
        np.testing.assert_allclose(moment[loaded], m[loaded], atol=1.0)


def test_force_plate_basics(walking5):
    rec = read_c3d(walking5)
    p1, p2 = rec.plates
    np.testing.assert_allclose(p1.normal, [0, 0, 1], atol=1e-12)  # lab Z is up
    (start, end), = p1.loaded_intervals(min_duration_s=0.05)
    assert 1.9 < start < 2.0 and 2.4 < end < 2.5
    # The free moment is the moment at the CoP: purely vertical, and it rebuilds the moment.
    loaded = p1.loaded
    fm = p1.free_moment[loaded]
    np.testing.assert_allclose(fm[:, :2], 0.0, atol=1e-9)
    rebuilt = fm + np.cross(p1.cop[loaded] - p1.centre, p1.force[loaded])
    np.testing.assert_allclose(rebuilt, p1.moment[loaded], atol=1e-9)
    # CoP on the plate (the heel strikes its edge; at 20 N, on touch-down, it still wanders).
    cop = p1.cop[p1.vertical_force > 100]
    lo, hi = p1.corners.min(axis=0), p1.corners.max(axis=0)
    assert ((cop[:, :2] > lo[:2] - 0.03) & (cop[:, :2] < hi[:2] + 0.03)).all()
    assert p2.vertical_force.max() > 900


def test_type1_plate_gives_the_same_cop(walking5, tmp_path):
    """Type 1 stores CoP and free moment directly: built from plate 1's own type-2 solution."""
    rec = read_c3d(walking5)
    p = rec.plates[0]
    rot = p.rotation
    cop = np.nan_to_num(p.cop - p.centre) @ rot  # plate frame, m
    tz = (np.nan_to_num(p.free_moment) @ rot)[:, 2]

    def as_type1(c):
        a = c["data"]["analogs"]
        a[0, 0:3, :] = (p.force @ rot).T
        a[0, 3, :], a[0, 4, :], a[0, 5, :] = cop[:, 0] * 1e3, cop[:, 1] * 1e3, tz * 1e3
        c["parameters"]["FORCE_PLATFORM"]["TYPE"]["value"] = np.array([1, 2])
        units = list(c["parameters"]["ANALOG"]["UNITS"]["value"])
        units[3:6] = ["mm", "mm", "Nmm"]
        c["parameters"]["ANALOG"]["UNITS"]["value"] = units

    out = read_c3d(_copy(walking5, tmp_path / "type1.c3d", as_type1)).plates[0]
    assert out.type == 1
    loaded = p.loaded & out.loaded
    assert loaded.sum() > 900
    np.testing.assert_allclose(out.cop[loaded], p.cop[loaded], atol=1e-4)  # 0.1 mm
    np.testing.assert_allclose(out.free_moment[loaded], p.free_moment[loaded], atol=2e-3)


def test_type3_kistler_channels(walking5, tmp_path):
    """Eight Kistler channels built from plate 1's wrench (sensor offsets a, b, depth az0)."""
    rec = read_c3d(walking5)
    p = rec.plates[0]
    a, b, az0 = 0.12, 0.2, -0.04  # m
    f = p.force @ p.rotation  # plate frame
    m = (p.moment @ p.rotation) - np.cross(f, [0.0, 0.0, az0])  # at the sensor plane
    d1, u, v = -m[:, 2] / (2 * b), m[:, 0] / (4 * b), m[:, 1] / (4 * a)
    s = f[:, 2] / 4
    channels = np.column_stack([f[:, 0] / 2 + d1, f[:, 0] / 2 - d1, f[:, 1] / 2, f[:, 1] / 2,
                                s + u - v, s + u + v, s - u + v, s - u - v])

    def as_kistler(c):
        n = c["data"]["analogs"].shape[2]
        c["data"]["analogs"] = np.concatenate([c["data"]["analogs"], np.zeros((1, 2, n))], 1)
        c["data"]["analogs"][0, [0, 1, 2, 3, 4, 5, 12, 13], :] = channels.T
        par = c["parameters"]
        for key, extra in (("LABELS", ["Fz3", "Fz4"]), ("DESCRIPTIONS", ["", ""]),
                           ("UNITS", ["N", "N"])):
            par["ANALOG"][key]["value"] = list(par["ANALOG"][key]["value"]) + extra
        units = list(par["ANALOG"]["UNITS"]["value"])
        units[:6] = ["N"] * 6
        par["ANALOG"]["UNITS"]["value"] = units
        par["ANALOG"]["SCALE"]["value"] = np.ones(14)
        par["ANALOG"]["GAIN"]["value"] = np.zeros(14, dtype=int)
        fp = par["FORCE_PLATFORM"]
        fp["TYPE"]["value"] = np.array([3, 2])
        fp["ORIGIN"]["value"] = np.array([[a * 1e3, 0.0], [b * 1e3, 0.0], [az0 * 1e3, 57.15]])
        fp["CHANNEL"]["value"] = np.array([[1, 2, 3, 4, 5, 6, 13, 14],
                                           [7, 8, 9, 10, 11, 12, 0, 0]]).T

    out = read_c3d(_copy(walking5, tmp_path / "kistler.c3d", as_kistler)).plates[0]
    assert out.type == 3
    np.testing.assert_allclose(out.force, p.force, atol=1e-3)
    np.testing.assert_allclose(out.moment, p.moment, atol=1e-3)
    firm = p.vertical_force > 100
    np.testing.assert_allclose(out.cop[firm], p.cop[firm], atol=1e-5)


def test_type4_applies_the_calibration_matrix(walking5, tmp_path):
    def as_type4(c):
        c["parameters"]["FORCE_PLATFORM"]["TYPE"]["value"] = np.array([4, 4])
        cal = np.zeros((6, 6, 2))
        cal[:, :, 0] = 2 * np.eye(6)  # plate 1: every channel doubled
        cal[:, :, 1] = np.eye(6)
        cal[0, 1, 1] = 0.5  # plate 2: Fx picks up half of the Fy channel
        c.add_parameter("FORCE_PLATFORM", "CAL_MATRIX", cal)

    base = read_c3d(walking5).plates
    p1, p2 = read_c3d(_copy(walking5, tmp_path / "type4.c3d", as_type4)).plates
    np.testing.assert_allclose(p1.force, 2 * base[0].force, rtol=1e-6, atol=1e-6)
    both = p1.loaded & base[0].loaded
    np.testing.assert_allclose(p1.cop[both], base[0].cop[both], atol=1e-9)
    raw = base[1].force @ base[1].rotation  # plate-frame channels of plate 2
    expected = (raw + 0.5 * raw[:, [1]] * np.array([1, 0, 0])) @ base[1].rotation.T
    np.testing.assert_allclose(p2.force, expected, atol=1e-4)


def test_analog_scale_comes_from_ezc3d_once(walking5, tmp_path):
    """ezc3d applies ANALOG:SCALE/OFFSET/GEN_SCALE; a copy stored at another scale reads the same."""
    def rescale(c):
        c["parameters"]["ANALOG"]["SCALE"]["value"] = np.full(12, 2.0)

    scaled = read_c3d(_copy(walking5, tmp_path / "scale.c3d", rescale)).plates
    for a, b in zip(scaled, read_c3d(walking5).plates, strict=True):
        np.testing.assert_allclose(a.force, b.force, atol=1e-4)
        np.testing.assert_allclose(a.moment, b.moment, atol=1e-6)


def test_up_axis_and_rotation(walking5):
    rec = read_c3d(walking5)
    assert detect_up_axis(rec.markers, rec.plates) == "z"
    assert detect_up_axis(rec.markers) == "z"  # from the markers alone
    for axis in ("x", "y", "z", "-x", "-y", "-z"):
        r = lab_to_opensim(axis)
        up = np.zeros(3)
        up["xyz".index(axis[-1])] = -1.0 if axis.startswith("-") else 1.0
        np.testing.assert_allclose(r @ up, [0, 1, 0])
        np.testing.assert_allclose(r @ r.T, np.eye(3))
        assert np.linalg.det(r) == pytest.approx(1.0)
    np.testing.assert_array_equal(lab_to_opensim("z") @ [1, 2, 3], [1, 3, -2])
    with pytest.raises(ValueError):
        lab_to_opensim("up")


# ------------------------------------------------------------------------------ bad input

def _expect_error(path: Path, *words: str) -> None:
    with pytest.raises(IngestError) as info:
        read_c3d(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message, message


def test_truncated_file(walking5, tmp_path):
    data = walking5.read_bytes()
    for n, name in ((len(data) // 2, "half.c3d"), (700, "head.c3d")):
        path = tmp_path / name
        path.write_bytes(data[:n])
        _expect_error(path, "truncated")


def test_corrupt_files(walking5, tmp_path):
    rng = np.random.default_rng(0)
    noise = tmp_path / "noise.c3d"
    noise.write_bytes(rng.bytes(4096))
    _expect_error(noise, "not a C3D file")
    # A valid header over random parameters: ezc3d alone can loop forever on this one.
    data = bytearray(walking5.read_bytes())
    data[1024:1024 + 20000] = rng.bytes(20000)
    params = tmp_path / "params.c3d"
    params.write_bytes(bytes(data))
    _expect_error(params, "corrupt C3D parameter section")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.c3d"
    path.write_bytes(b"")
    _expect_error(path, "empty")


def test_no_markers(walking5, tmp_path):
    def drop_points(c):
        n = c["data"]["points"].shape[2]
        c["data"]["points"] = np.zeros((4, 0, n))
        c["data"]["meta_points"]["residuals"] = np.zeros((1, 0, n))
        c["data"]["meta_points"]["camera_masks"] = np.zeros((7, 0, n), dtype=bool)
        c["parameters"]["POINT"]["LABELS"]["value"] = []
        c["parameters"]["POINT"]["DESCRIPTIONS"]["value"] = []

    _expect_error(_copy(walking5, tmp_path / "nomarkers.c3d", drop_points), "no markers")


def test_all_markers_missing(walking5, tmp_path):
    def blank(c):
        c["data"]["points"][:3] = 0.0  # exact zeros mean "not seen"

    _expect_error(_copy(walking5, tmp_path / "blank.c3d", blank), "every marker is missing")


def test_unknown_units(walking5, tmp_path):
    def furlongs(c):
        c["parameters"]["POINT"]["UNITS"]["value"] = ["furlongs"]

    _expect_error(_copy(walking5, tmp_path / "units.c3d", furlongs), "unknown marker units",
                  "furlongs")


def test_plate_channels_that_do_not_match(walking5, tmp_path):
    def beyond(c):
        ch = c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"]
        ch[5, 1] = 13  # only 12 analog channels exist
        c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"] = ch

    def shared(c):
        ch = c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"]
        ch[0, 1] = 1  # plate 2 reads plate 1's Fx
        c["parameters"]["FORCE_PLATFORM"]["CHANNEL"]["value"] = ch

    def volts(c):
        units = list(c["parameters"]["ANALOG"]["UNITS"]["value"])
        units[2] = "V"  # Fz of plate 1 uncalibrated
        c["parameters"]["ANALOG"]["UNITS"]["value"] = units

    def type5(c):
        c["parameters"]["FORCE_PLATFORM"]["TYPE"]["value"] = np.array([2, 5])

    def type3(c):  # a Kistler plate needs 8 channels; CHANNEL lists 6
        c["parameters"]["FORCE_PLATFORM"]["TYPE"]["value"] = np.array([3, 2])

    _expect_error(_copy(walking5, tmp_path / "beyond.c3d", beyond), "analog channel 13",
                  "12 analog channels")
    _expect_error(_copy(walking5, tmp_path / "shared.c3d", shared), "claimed by force plates")
    _expect_error(_copy(walking5, tmp_path / "volts.c3d", volts), "expects a force", "'V'")
    _expect_error(_copy(walking5, tmp_path / "type5.c3d", type5), "type 5")
    _expect_error(_copy(walking5, tmp_path / "type3.c3d", type3), "needs 8 analog channels")


_SWIG_PROBE = """
import ezc3d, opensim, sys
from pipeline.c3d import save_c3d
c = ezc3d.c3d(sys.argv[1])
save_c3d(c, sys.argv[2]) if sys.argv[3] == "save_c3d" else c.write(sys.argv[2])
opensim.ModOpReplaceJointsWithWelds(opensim.StdVectorString(["mtp_r"]))
"""


@pytest.mark.parametrize("writer, works", [("save_c3d", True), ("ezc3d", False)])
def test_writing_c3d_leaves_opensim_usable(walking5, tmp_path, writer, works):
    """ezc3d's own write() breaks OpenSim's vector arguments for the rest of the process (the
    trap save_c3d exists for); each case runs in a fresh interpreter."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", _SWIG_PROBE, str(walking5),
                           str(tmp_path / "out.c3d"), writer], capture_output=True, text=True)
    assert (done.returncode == 0) == works, done.stderr[-500:]
    assert (tmp_path / "out.c3d").exists()
