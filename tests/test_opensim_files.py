"""OpenSim TRC/STO/MOT I/O against the real example files and against OpenSim's own readers.

Values hard-coded below were read off the files with sed/awk (line numbers in the comments).
"""
import numpy as np
import opensim
import pandas as pd
import pytest

from pipeline.errors import IngestError
from pipeline.opensim_files import (
    is_translational,
    read_mot,
    read_sto,
    read_trc,
    rename_state_columns,
    state_column_name,
    to_radians,
    write_mot,
    write_sto,
    write_trc,
)
from pipeline.trial import marker_columns

# --------------------------------------------------------------------------- helpers


def osim_trc(path):
    """OpenSim's TRCFileAdapter reading: (time, labels <m>_x/_y/_z, values)."""
    table = opensim.TimeSeriesTableVec3(str(path)).flatten(["_x", "_y", "_z"])
    return (np.array(table.getIndependentColumn()), list(table.getColumnLabels()),
            table.getMatrix().to_numpy())


def osim_sto(path):
    """OpenSim's STO/MOT adapter reading: (time, labels, values)."""
    table = opensim.TimeSeriesTable(str(path))
    return (np.array(table.getIndependentColumn()), list(table.getColumnLabels()),
            table.getMatrix().to_numpy())


def storage_columns(source, labels):
    """OpenSim's legacy Storage reading of a path (or an opensim.Storage):
    (labels incl. time, in_degrees, time, {label: values})."""
    sto = source if isinstance(source, opensim.Storage) else opensim.Storage(str(source))
    arr = opensim.ArrayDouble()
    sto.getTimeColumn(arr)
    time = np.array([arr.get(i) for i in range(arr.getSize())])
    columns = {}
    for label in labels:
        arr = opensim.ArrayDouble()
        sto.getDataColumn(label, arr)
        columns[label] = np.array([arr.get(i) for i in range(arr.getSize())])
    names = [sto.getColumnLabels().get(i) for i in range(sto.getColumnLabels().getSize())]
    return names, sto.isInDegrees(), time, columns


def assert_same_as_opensim(df, time, labels, values):
    assert list(df.columns) == labels
    np.testing.assert_array_equal(df.index.to_numpy(), time)
    np.testing.assert_array_equal(df.to_numpy(), values)


# --------------------------------------------------------------------------- real files: TRC


def test_markers_walk_trc(walking_dir):
    df = read_trc(walking_dir / "markers_walk.trc")
    assert df.shape == (238, 41 * 3)
    assert df.index.name == "time"
    assert df.index[0] == 0.0 and df.index[-1] == 2.37
    np.testing.assert_allclose(np.diff(df.index), 0.01, atol=1e-12)
    assert df.columns[:3].tolist() == ["R.Shoulder_x", "R.Shoulder_y", "R.Shoulder_z"]
    assert df.columns[-1] == "L.Toe_z"
    assert df.attrs["units"] == "mm"
    assert df.attrs["data_rate"] == 100.0 and df.attrs["camera_rate"] == 100.0
    assert df.attrs["orig_data_rate"] == 100.0 and df.attrs["orig_data_start_frame"] == 1
    assert "frame_numbers" not in df.attrs  # frames are 1..238
    assert df.attrs["source"] == str(walking_dir / "markers_walk.trc")
    # line 7 (frame 1), line 107 (frame 101, t=1.0), line 244 (frame 238): not converted from mm
    assert df.iloc[0][["R.Shoulder_x", "R.Shoulder_y", "R.Shoulder_z"]].tolist() == \
        [-652.630, 1529.542, -94.520]
    assert df.loc[1.0, ["R.Shoulder_x", "R.Shoulder_y", "R.Shoulder_z"]].tolist() == \
        [626.478, 1503.414, -95.832]
    assert df.iloc[-1][["L.Toe_x", "L.Toe_y", "L.Toe_z"]].tolist() == [2461.683, 52.199, -296.859]
    assert not df.isna().any().any()
    assert_same_as_opensim(df, *osim_trc(walking_dir / "markers_walk.trc"))


def test_c3d_converted_trc_with_nan_markers(c3d_dir):
    df = read_trc(c3d_dir / "std_walking5_markers.trc")
    assert df.shape == (112, 40 * 3)
    assert df.attrs["units"] == "mm" and df.attrs["data_rate"] == 250.0
    assert df.columns[:3].tolist() == ["LTH3_x", "LTH3_y", "LTH3_z"]
    assert df.columns[-3:].tolist() == ["RKJC_x", "RKJC_y", "RKJC_z"]
    assert df.iloc[0].isna().all()  # line 7: every marker NaN at t=0
    assert df.loc[4.4, ["LTH3_x", "LTH3_y", "LTH3_z"]].tolist() == [-2320.8, 253.0, 618.89]
    assert df.index[-1] == 4.408
    assert_same_as_opensim(df, *osim_trc(c3d_dir / "std_walking5_markers.trc"))


# --------------------------------------------------------------------------- real files: STO/MOT


def test_grf_walk_mot(walking_dir):
    path = walking_dir / "grf_walk.mot"
    df = read_mot(path)
    assert df.shape == (4778, 18)
    assert df.attrs["in_degrees"] is False and df.attrs["name"] == "grf_walk"
    assert df.attrs["header"] == {"version": "1", "nRows": "4778", "nColumns": "19"}
    np.testing.assert_allclose(np.diff(df.index), 1 / 2000, atol=1e-12)
    assert df.index[-1] == 2.3885
    sides = {c.split("_")[2] for c in df.columns}
    assert sides == {"r", "l"}  # two plates, one per foot
    assert df.columns[:3].tolist() == ["ground_force_r_vx", "ground_force_r_vy",
                                       "ground_force_r_vz"]
    # line 8 (t=0): CoP of the unloaded plates; line 2007 has its time written as 0.9995000000000001
    assert df.iloc[0]["ground_force_r_px"] == 331.7057913303967
    assert df.iloc[0]["ground_force_l_pz"] == -495.9267010867398
    assert df.index[1999] == 0.9995000000000001
    assert df.iloc[1999]["ground_force_r_vy"] == 58.35223469165923
    assert df.iloc[1999]["ground_force_l_vy"] == 887.3237993248442
    # line 1670: peak right vertical force
    assert df["ground_force_r_vy"].idxmax() == 0.831
    assert df["ground_force_r_vy"].max() == 942.3279875969356
    assert_same_as_opensim(df, *osim_sto(path))
    names, in_deg, time, cols = storage_columns(path, ["ground_force_l_vy"])
    assert names == ["time", *df.columns] and in_deg is False
    np.testing.assert_array_equal(time, df.index)
    np.testing.assert_array_equal(cols["ground_force_l_vy"], df["ground_force_l_vy"])


def test_id_walk_sto(walking_dir):
    path = walking_dir / "id_walk.sto"
    df = read_sto(path)
    assert df.shape == (1350, 31)
    assert df.attrs["name"] == "Inverse Dynamics Generalized Forces"
    assert df.index[0] == 0.45 and df.index[-1] == 1.799
    assert "pelvis_tx_force" in df.columns and "knee_angle_r_beta_force" in df.columns
    assert df.iloc[0]["hip_flexion_r_moment"] == -11.10173824  # line 8, padded fields
    assert df.loc[0.949, "hip_flexion_r_moment"] == 39.48066344  # line 507
    assert df.loc[0.949, "knee_angle_r_moment"] == -21.11247435
    assert_same_as_opensim(df, *osim_sto(path))
    names, _, _, cols = storage_columns(path, ["knee_angle_r_moment"])
    assert names == ["time", *df.columns]
    np.testing.assert_array_equal(cols["knee_angle_r_moment"], df["knee_angle_r_moment"])


def test_coordinates_for_id_sto(walking_dir):
    path = walking_dir / "coordinates_for_ID.sto"
    df = read_sto(path)
    # the header says nColumns=40 but the file holds 32 (time + 31): the labels decide
    assert df.shape == (1350, 31)
    assert df.attrs["header"]["nColumns"] == "40"
    assert df.attrs["header"]["DataType"] == "double"
    assert df.attrs["in_degrees"] is False and df.attrs["name"] == "Coordinates"
    assert df.index[0] == 0.45 and df.index[-1] == 1.799
    np.testing.assert_allclose(np.diff(df.index), 0.001, atol=1e-12)  # 1000 Hz
    assert df.iloc[0]["pelvis_tilt"] == 0.001606593553352076  # line 10
    assert df.iloc[0]["pelvis_ty"] == 0.96796985
    assert df.loc[0.949, "hip_flexion_r"] == -0.2064537763605975  # line 509
    assert df.loc[0.949, "knee_angle_r"] == 0.557896605677586
    assert df.iloc[-1]["pelvis_tx"] == 1.68609409  # last line
    assert_same_as_opensim(df, *osim_sto(path))


def test_old_format_storage_with_padded_labels(c3d_dir):
    df = read_sto(c3d_dir / "std_walking5_grfs.sto")
    assert df.shape == (90, 18)
    assert df.attrs["name"] == "ds_std_walking5_grfs.sto"
    assert df.attrs["header"] == {"datacolumns": "19", "datarows": "90",
                                  "range": "0.000000 4.411500"}
    assert df.columns[:3].tolist() == ["f1_1", "f1_2", "f1_3"]
    assert df.loc[0.1, "f1_2"] == -1.37906599  # line 9
    assert df.loc[0.1, "p1_1"] == 918.59997559 and df.loc[0.1, "p2_1"] == 304.79998779
    assert df.index[-1] == 4.4115
    assert_same_as_opensim(df, *osim_sto(c3d_dir / "std_walking5_grfs.sto"))


def test_sto_without_name_line(c3d_dir):
    df = read_sto(c3d_dir / "std_walking5_analog.sto")
    assert df.attrs["name"] == "std_walking5_analog"  # file stem: the header has no name line
    assert df.attrs["header"]["DataRate"] == "2000.000000"
    assert df.shape == (10, 12)
    assert_same_as_opensim(df, *osim_sto(c3d_dir / "std_walking5_analog.sto"))


# --------------------------------------------------------------------------- round trips


def test_trc_round_trip_and_opensim_reads_it(walking_dir, tmp_path):
    df = read_trc(walking_dir / "markers_walk.trc")
    out = tmp_path / "walk.trc"
    write_trc(out, df)
    back = read_trc(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert {k: v for k, v in back.attrs.items() if k != "source"} == \
        {k: v for k, v in df.attrs.items() if k != "source"}
    assert_same_as_opensim(back, *osim_trc(out))
    meta = opensim.TimeSeriesTableVec3(str(out))
    assert meta.getTableMetaDataAsString("Units") == "mm"
    assert float(meta.getTableMetaDataAsString("DataRate")) == 100.0
    assert meta.getNumRows() == 238 and meta.getNumColumns() == 41


def test_trc_nan_gaps_full_precision_and_frames(tmp_path):
    rng = np.random.default_rng(0)
    names = ["RASI", "LASI", "R.Heel", "LTOE"]
    t = 0.5 + np.arange(7) / 120.0
    values = rng.normal(size=(7, 12)) * 1e3 / 3.0
    values[2:4, 3:6] = np.nan  # LASI gap
    values[5, 9:12] = np.nan  # last marker missing: the end of the row
    values[0, 0] = 1e-300
    df = pd.DataFrame(values, index=pd.Index(t, name="time"), columns=marker_columns(names))
    df.attrs = {"units": "m", "frame_numbers": list(range(61, 68)), "orig_data_start_frame": 61}
    out = tmp_path / "gaps.trc"
    write_trc(out, df)
    back = read_trc(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs["frame_numbers"] == list(range(61, 68))
    assert back.attrs["units"] == "m" and back.attrs["orig_data_start_frame"] == 61
    assert back.attrs["data_rate"] == pytest.approx(120.0, rel=1e-12)  # from the time column
    time, labels, osim_values = osim_trc(out)
    assert_same_as_opensim(back, time, labels, osim_values)
    assert np.isnan(osim_values[5, 9:12]).all()


def test_trc_reads_empty_fields_and_trailing_tabs_as_nan(tmp_path):
    path = tmp_path / "blank.trc"
    path.write_text(
        "PathFileType\t4\t(X/Y/Z)\tblank.trc\n"
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame"
        "\tOrigNumFrames\n"
        "50\t50\t3\t2\tmm\t50\t1\t2\n"
        "Frame#\tTime\tA\t\t\tB\t\t\t\n"
        "\t\tX1\tY1\tZ1\tX2\tY2\tZ2\t\n\n"
        "1\t0\t1\t2\t3\t4\t5\t6\t\t\n"
        "2\t0.02\t\t\t\t4.5\t5.5\t6.5\n\n")
    with pytest.warns(UserWarning, match="NumFrames=3"):  # header and rows disagree
        df = read_trc(path)
    assert df.loc[0.02, ["A_x", "A_y", "A_z"]].isna().all()
    assert df.loc[0.02, "B_y"] == 5.5 and df.loc[0.0, "A_z"] == 3.0
    assert df.attrs["data_rate"] == 50.0


def test_trc_latin1_marker_names(tmp_path):
    path = tmp_path / "latin1.trc"
    path.write_bytes(TRC_HEAD.encode() + b"100\t100\t1\t2\tmm\t100\t1\t1\n"
                     b"Frame#\tTime\tKn\xe4\t\t\tZeh\x85\t\t\t\n\t\tX1\tY1\tZ1\tX2\tY2\tZ2\n"
                     b"\n1\t0\t1\t2\t3\t4\t 5 \t6\n")
    df = read_trc(path)
    # \x85 is a line break to str.splitlines() (it must not split the row) and blank to strip()
    assert df.columns.tolist() == marker_columns(["Kn\u00e4", "Zeh"])
    assert df.iloc[0].tolist() == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]


def test_sto_round_trip_and_opensim_reads_it(walking_dir, tmp_path):
    df = read_sto(walking_dir / "coordinates_for_ID.sto")
    out = tmp_path / "coords.sto"
    write_sto(out, df)
    back = read_sto(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs["name"] == "Coordinates" and back.attrs["in_degrees"] is False
    # counts are recomputed; the rest of the header survives
    assert back.attrs["header"]["nColumns"] == "32" and back.attrs["header"]["version"] == "1"
    assert back.attrs["header"]["DataType"] == "double"
    assert_same_as_opensim(back, *osim_sto(out))
    names, in_deg, time, cols = storage_columns(out, ["hip_flexion_r", "pelvis_ty"])
    assert names == ["time", *df.columns] and in_deg is False
    np.testing.assert_array_equal(time, df.index)
    np.testing.assert_array_equal(cols["hip_flexion_r"], df["hip_flexion_r"])


def test_mot_round_trip_full_precision_in_degrees(tmp_path):
    rng = np.random.default_rng(1)
    t = np.arange(5) / 3.0  # not exactly representable in decimal
    df = pd.DataFrame({"hip_flexion_r": rng.normal(size=5) * 40 / 7,
                       "pelvis_tx": rng.normal(size=5) / 3,
                       "knee_angle_r": [0.1, 1e-310, -0.0, 2.5e300, 1 / 3]},
                      index=pd.Index(t, name="time"))
    out = tmp_path / "ik.mot"
    write_mot(out, df, in_degrees=True, name="IK result")
    back = read_mot(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs["in_degrees"] is True and back.attrs["name"] == "IK result"
    assert_same_as_opensim(back, *osim_sto(out))
    assert opensim.TimeSeriesTable(str(out)).getTableMetaDataAsString("inDegrees") == "yes"
    names, in_deg, _, cols = storage_columns(out, ["hip_flexion_r"])
    assert in_deg is True and names == ["time", "hip_flexion_r", "pelvis_tx", "knee_angle_r"]
    np.testing.assert_array_equal(cols["hip_flexion_r"], df["hip_flexion_r"])
    # the attrs now say degrees: writing them as radians would mislabel the units
    with pytest.raises(ValueError, match="in_degrees"):
        write_mot(tmp_path / "bad.mot", back, in_degrees=False)


def test_sto_nan_round_trip(tmp_path):
    df = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": [np.nan, 0.5, -2.0]},
                      index=pd.Index([0.0, 0.1, 0.2], name="time"))
    out = tmp_path / "gaps.sto"
    write_sto(out, df)
    back = read_sto(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    # TimeSeriesTable reads NaN; the legacy Storage (used by IK/ID tools) cannot: see the docs
    assert_same_as_opensim(back, *osim_sto(out))


def test_grf_mot_round_trip(walking_dir, tmp_path):
    df = read_mot(walking_dir / "grf_walk.mot")
    out = tmp_path / "grf.mot"
    write_mot(out, df)
    back = read_mot(out)
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs["name"] == "grf_walk"
    assert_same_as_opensim(back, *osim_sto(out))


# --------------------------------------------------------------------------- labels and units


def test_state_path_labels():
    assert state_column_name("/jointset/hip_r/hip_flexion_r/value") == "hip_flexion_r"
    assert state_column_name("/jointset/hip_r/hip_flexion_r/speed") == "hip_flexion_r_speed"
    assert state_column_name("/forceset/soleus_r/activation") == "soleus_r_activation"
    assert state_column_name("/forceset/reserve_pelvis_tilt") == "reserve_pelvis_tilt"
    assert state_column_name("knee_angle_r") == "knee_angle_r"
    df = pd.DataFrame([[0.1, 2.0]], columns=["/jointset/knee_r/knee_angle_r/value",
                                             "/jointset/knee_r/knee_angle_r/speed"],
                      index=pd.Index([0.0], name="time"))
    df.attrs = {"in_degrees": False}
    renamed = rename_state_columns(df)
    assert renamed.columns.tolist() == ["knee_angle_r", "knee_angle_r_speed"]
    assert renamed.attrs == {"in_degrees": False}
    clash = df.set_axis(["/a/b/x/value", "/c/d/x/value"], axis=1)
    with pytest.raises(IngestError, match="collide"):
        rename_state_columns(clash)


def test_moco_trajectory_file(tmp_path):
    # a genuine Moco file: state-path labels, no name line, num_* keys Moco needs to read it back
    states = ["/jointset/hip_r/hip_flexion_r/value", "/jointset/hip_r/hip_flexion_r/speed"]
    time = opensim.Vector([0.0, 0.1, 0.2])
    values = np.array([[0.1, 1.5], [0.2, 1.25], [1 / 3, -0.5]])
    state_matrix = opensim.Matrix(3, 2)
    for i, j in np.ndindex(values.shape):
        state_matrix.set(i, j, values[i, j])
    controls = opensim.Matrix(3, 1, 0.25)
    empty = opensim.StdVectorString()
    trajectory = opensim.MocoTrajectory(
        time, opensim.StdVectorString(states),
        opensim.StdVectorString(["/forceset/reserve_hip_flexion_r"]), empty, empty,
        state_matrix, controls, opensim.Matrix(3, 0), opensim.RowVector(0))
    path = tmp_path / "solution.sto"
    trajectory.write(str(path))
    df = read_sto(path)
    assert df.attrs["name"] == "solution" and df.attrs["header"]["num_states"] == "2"
    renamed = rename_state_columns(df)
    assert renamed.columns.tolist() == ["hip_flexion_r", "hip_flexion_r_speed",
                                        "reserve_hip_flexion_r"]
    np.testing.assert_array_equal(renamed[["hip_flexion_r", "hip_flexion_r_speed"]], values)
    # what we write, Moco reads back as a trajectory
    out = tmp_path / "rewritten.sto"
    write_sto(out, df)
    again = opensim.MocoTrajectory(str(out))
    assert list(again.getStateNames()) == states
    np.testing.assert_array_equal(again.getStatesTrajectory().to_numpy(), values)


def test_to_radians_matches_opensim(walking_dir, tmp_path):
    rad = read_sto(walking_dir / "coordinates_for_ID.sto")
    model = opensim.Model(str(walking_dir / "subject_walk_scaled.osim"))
    coords = model.getCoordinateSet()
    motion = {coords.get(i).getName(): coords.get(i).getMotionType()
              for i in range(coords.getSize())}
    rotational = [c for c, m in motion.items() if m == opensim.Coordinate.Rotational]
    translational = {c for c, m in motion.items() if m == opensim.Coordinate.Translational}
    # the naming rule agrees with the model for every coordinate of the real model
    assert {c for c in motion if is_translational(c)} == translational
    # a degrees file as OpenSim's own tools write it: only Rotational coordinates in degrees
    deg = rad.copy()
    deg[rotational] = np.rad2deg(rad[rotational].to_numpy())
    deg.attrs = dict(rad.attrs, in_degrees=True)
    path = tmp_path / "deg.mot"
    write_mot(path, deg)
    model.initSystem()
    sto = opensim.Storage(str(path))
    model.getSimbodyEngine().convertDegreesToRadians(sto)
    ours = to_radians(read_mot(path), coordinate_columns=rotational)
    assert ours.attrs["in_degrees"] is False
    _, in_deg, _, cols = storage_columns(sto, list(ours.columns))
    assert in_deg is False
    for column in ours.columns:
        np.testing.assert_allclose(ours[column], cols[column], rtol=1e-15, atol=0)
    np.testing.assert_allclose(ours.to_numpy(), rad.to_numpy(), rtol=1e-14, atol=1e-16)


def test_to_radians_default_rule():
    df = pd.DataFrame([[90.0, 0.5, 180.0, 0.25, 45.0]],
                      columns=["hip_flexion_r", "pelvis_tx", "knee_angle_r_beta",
                               "pelvis_ty_speed", "/jointset/hip_r/hip_flexion_r/speed"],
                      index=pd.Index([0.0], name="time"))
    df.attrs = {"in_degrees": True, "name": "x"}
    out = to_radians(df)
    assert out.iloc[0].tolist() == [np.pi / 2, 0.5, np.pi, 0.25, np.pi / 4]
    assert out.attrs == {"in_degrees": False, "name": "x"} and df.attrs["in_degrees"] is True
    again = to_radians(out)  # already radians: unchanged
    pd.testing.assert_frame_equal(again, out)
    with pytest.raises(KeyError):
        to_radians(df, coordinate_columns=["ankle_angle_r"])


# --------------------------------------------------------------------------- tolerant parsing


def test_sto_blank_trailing_columns_spaces_and_crlf(tmp_path):
    path = tmp_path / "loose.sto"
    path.write_bytes(b"run 3\r\nversion=1\r\nnRows=2\r\nnColumns=3\r\ninDegrees=yes\r\n"
                     b"endheader\r\ntime\ta\tb\t\t\r\n0\t1.5\t\t\r\n0.01\t2.5\t3\t\r\n\r\n")
    df = read_sto(path)
    assert df.columns.tolist() == ["a", "b"] and df.attrs["in_degrees"] is True
    assert df.attrs["name"] == "run 3"
    assert np.isnan(df.loc[0.0, "b"]) and df.loc[0.01, "b"] == 3.0
    spaced = tmp_path / "spaced.mot"
    spaced.write_text("name old\ndatacolumns 3\ndatarows 1\nendheader\n"
                      "time   a   b\n  0.0   1.0  -2.0\n")
    df = read_mot(spaced)
    assert df.columns.tolist() == ["a", "b"] and df.iloc[0].tolist() == [1.0, -2.0]
    assert df.attrs["name"] == "old" and df.attrs["in_degrees"] is False


# --------------------------------------------------------------------------- clear errors


TRC_HEAD = ("PathFileType\t4\t(X/Y/Z)\tx.trc\n"
            "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\t"
            "OrigDataStartFrame\tOrigNumFrames\n")


@pytest.mark.parametrize("name,text,match", [
    ("empty.trc", "", "empty"),
    ("blank.sto", "\n  \n", "empty"),
    ("noend.sto", "x\nversion=1\ntime\ta\n0\t1\n", "endheader"),
    ("notrc.trc", "Frame#\tTime\n1\t0\n\n\n\n", "PathFileType"),
    ("short.trc", TRC_HEAD + "100\t100\t1\t2\tmm\t100\t1\t1\n", "5"),
    ("count.trc", TRC_HEAD + "100\t100\t1\t2\tmm\t100\t1\nFrame#\tTime\tA\t\t\t\n"
     "\t\tX1\tY1\tZ1\n\n1\t0\t1\t2\t3\n", "8 keys"),
    ("names.trc", TRC_HEAD + "100\t100\t1\t2\tmm\t100\t1\t1\nFrame#\tTime\tA\t\t\t\n"
     "\t\tX1\tY1\tZ1\n\n1\t0\t1\t2\t3\n", "NumMarkers is 2"),
    ("axes.trc", TRC_HEAD + "100\t100\t1\t1\tmm\t100\t1\t1\nFrame#\tTime\tA\t\t\t\n"
     "\n1\t0\t1\t2\t3\n", "X1 Y1 Z1"),
    ("ragged.trc", TRC_HEAD + "100\t100\t2\t1\tmm\t100\t1\t2\nFrame#\tTime\tA\t\t\t\n"
     "\t\tX1\tY1\tZ1\n\n1\t0\t1\t2\t3\n2\t0.01\t1\t2\n", "line 8"),
    ("ragged.sto", "x\nendheader\ntime\ta\tb\n0\t1\t2\n0.1\t1\t2\t3\n", "line 5"),
    ("text.mot", "x\nendheader\ntime\ta\n0\t1\n0.1\tabc\n", "'abc' at line 5"),
    ("notime.sto", "x\nendheader\nframe\ta\n0\t1\n", "'time'"),
])
def test_bad_files_raise_ingest_error_naming_the_file(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    reader = read_trc if name.endswith(".trc") else read_sto
    with pytest.raises(IngestError, match=match) as info:
        reader(path)
    assert info.value.file == str(path) and str(path) in str(info.value)
    assert info.value.stage == "ingest"


def test_missing_file_raises_ingest_error(tmp_path):
    with pytest.raises(IngestError, match="cannot read"):
        read_sto(tmp_path / "nope.sto")


def test_writers_reject_bad_tables(tmp_path):
    with pytest.raises(ValueError, match="_x"):
        write_trc(tmp_path / "a.trc", pd.DataFrame({"A_x": [1.0], "A_z": [1.0]}))
    with pytest.raises(ValueError, match="tabs"):
        write_sto(tmp_path / "a.sto", pd.DataFrame({"a\tb": [1.0]}))
    # OpenSim reads every spelling of infinity as NaN
    with pytest.raises(ValueError, match="infinite"):
        write_sto(tmp_path / "a.sto", pd.DataFrame({"a": [1.0, np.inf]}))
    with pytest.raises(ValueError, match="infinite"):
        write_trc(tmp_path / "a.trc", pd.DataFrame({"A_x": [1.0], "A_y": [-np.inf],
                                                    "A_z": [1.0]}), data_rate=100.0)
