"""Warehouse: atomic leaves, units and provenance in metadata, string partitions, catalog."""
import multiprocessing as mp

import numpy as np
import pandas as pd
import pytest

from warehouse import catalog, store


def _kinematics(n=5):
    t = pd.Index(np.arange(n) / 100.0, name="time")
    return pd.DataFrame({"hip_flexion_r": np.linspace(0, 0.5, n),
                         "pelvis_ty": np.full(n, 0.93),
                         "hip_flexion_r_speed": np.ones(n)}, index=t)


def test_leaf_round_trip_keeps_values_units_and_provenance(tmp_path):
    df = _kinematics()
    path = store.write_leaf(tmp_path, "kinematics", "01", "walk_01", df,
                            provenance={"model_sha256": "abc", "ipopt_status": "Solve_Succeeded"})
    assert path == tmp_path / "kinematics" / "subject=01" / "trial=walk_01" / "part-0.parquet"
    back, prov = store.read_leaf(path)
    pd.testing.assert_frame_equal(back, df)
    assert prov == {"model_sha256": "abc", "ipopt_status": "Solve_Succeeded"}
    units = store.units_of(path)
    assert units == {"time": "s", "hip_flexion_r": "rad", "pelvis_ty": "m",
                     "hip_flexion_r_speed": "rad/s"}


def test_kinetics_and_grf_units_follow_opensim_names(tmp_path):
    df = pd.DataFrame({"time": [0.0], "knee_angle_r_moment": [1.0], "pelvis_tx_force": [2.0],
                       "ground_force_r_vy": [700.0], "ground_force_r_px": [0.1],
                       "ground_torque_r_y": [1.5]}).set_index("time")
    path = store.write_leaf(tmp_path, "kinetics", "S01", "t", df)
    assert store.units_of(path) == {"time": "s", "knee_angle_r_moment": "N*m",
                                    "pelvis_tx_force": "N", "ground_force_r_vy": "N",
                                    "ground_force_r_px": "m", "ground_torque_r_y": "N*m"}


def test_partitions_read_as_strings_and_staging_files_are_invisible(tmp_path):
    store.write_leaf(tmp_path, "kinematics", "01", "1", _kinematics())
    store.write_leaf(tmp_path, "kinematics", "02", "walk", _kinematics())
    # A crashed writer's staging file must not be read as data.
    leaf_dir = tmp_path / "kinematics" / "subject=01" / "trial=1"
    (leaf_dir / "_part-0.parquet.dead.tmp").write_bytes(b"garbage")
    table = store.read_table(tmp_path, "kinematics")
    assert len(table) == 10
    assert sorted(table["subject"].unique()) == ["01", "02"]
    assert set(table["trial"].unique()) == {"1", "walk"}
    only = store.read_table(tmp_path, "kinematics", subjects=["02"])
    assert set(only["subject"]) == {"02"}


def test_failed_write_leaves_old_leaf_and_no_staging(tmp_path, monkeypatch):
    store.write_leaf(tmp_path, "kinematics", "01", "a", _kinematics(5))

    def boom(*args, **kwargs):
        raise OSError("disk full")
    monkeypatch.setattr(store.pq, "write_table", boom)
    with pytest.raises(OSError):
        store.write_leaf(tmp_path, "kinematics", "01", "a", _kinematics(7))
    leaf_dir = tmp_path / "kinematics" / "subject=01" / "trial=a"
    assert [p.name for p in leaf_dir.iterdir()] == ["part-0.parquet"]
    back, _ = store.read_leaf(leaf_dir / "part-0.parquet")
    assert len(back) == 5


def test_catalog_upsert_replaces_by_key(tmp_path):
    catalog.upsert(tmp_path, "trials", [{"subject": "01", "trial": "a", "frames": 10}])
    catalog.upsert(tmp_path, "trials", [{"subject": "01", "trial": "a", "frames": 12},
                                        {"subject": "01", "trial": "b", "frames": 3}])
    trials = catalog.read_catalog(tmp_path, "trials").sort_values("trial")
    assert trials["trial"].tolist() == ["a", "b"]
    assert trials["frames"].tolist() == [12, 3]
    assert trials["subject"].tolist() == ["01", "01"]
    # An update names some columns and keeps the others.
    catalog.upsert(tmp_path, "trials", [{"subject": "01", "trial": "b", "ground_truth": True}])
    row = catalog.read_catalog(tmp_path, "trials").set_index("trial").loc["b"]
    assert row["frames"] == 3 and bool(row["ground_truth"])
    catalog.remove(tmp_path, "trials", subject="01", trial="a")
    assert catalog.read_catalog(tmp_path, "trials")["trial"].tolist() == ["b"]


def _append_failures(root, worker, n):
    for i in range(n):
        catalog.record_failure(root, subject=f"w{worker}", trial=str(i), stage="ingest",
                               problem="test")


def test_concurrent_catalog_writers_lose_no_rows(tmp_path):
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_append_failures, args=(str(tmp_path), w, 15)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    failures = catalog.read_catalog(tmp_path, "failures")
    assert len(failures) == 45
    assert not failures.duplicated(["subject", "trial", "stage"]).any()
