"""BuildDataset for real on one synthetic subject, kept small: the motion trials are quiet
standing (copies of the static trial), the arms and toes are welded, the mesh is coarse.

Checks the lab-facing behaviour of issue 4: ground truth lands in the warehouse with provenance,
a second run does nothing, a new trial is the only thing processed, a changed Moco setting
produces new artifacts beside the old ones, and bad trials become failures rows.
"""
import json
import shutil
import time
from pathlib import Path

import luigi
import numpy as np
import pytest
from data_factory import good_subject, tiny_config

from warehouse import catalog, store


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    folder = good_subject(root / "raw", trials=("stand_01",))
    tiny_config(root)
    return root, folder.name


RAN: list[tuple[str, str]] = []


@luigi.Task.event_handler(luigi.Event.SUCCESS)
def _record_success(task):
    RAN.append((task.get_task_family(), getattr(task, "trial", "")))


def _build(root: Path, overrides: dict | None = None) -> list[tuple[str, str]]:
    """Run BuildDataset; returns the (task family, trial) of every task that ran."""
    import tasks

    config = luigi.configuration.get_config()
    config.read(str(root / "luigi.cfg"))
    for (section, key), value in (overrides or {}).items():
        config.set(section, key, value)
    RAN.clear()
    result = luigi.build([tasks.BuildDataset()], local_scheduler=True, workers=1,
                         detailed_summary=True, log_level="WARNING")
    assert result.scheduling_succeeded and result.status.name == "SUCCESS", result.summary_text
    return list(RAN)


def _snapshot(root: Path) -> dict:
    """Every file of the warehouse and artifacts with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns)
            for folder in ("warehouse", "artifacts") for p in (root / folder).rglob("*")
            if p.is_file()}


def _solved(ran) -> list[str]:
    return sorted(trial for family, trial in ran if family == "TrackMoco")


@pytest.mark.slow
def test_build_dataset_end_to_end_and_incremental(lab):
    root, subject = lab
    assert _solved(_build(root)) == ["stand_01"]
    warehouse = root / "warehouse"
    kinetics, provenance = store.read_leaf(store.leaf_path(warehouse, "kinetics", subject,
                                                           "stand_01"))
    info = json.loads((root / "raw" / subject / "subject.json").read_text())
    weight = info["mass_kg"] * 9.80665
    vertical = kinetics["ground_force_r_vy"] + kinetics["ground_force_l_vy"]
    np.testing.assert_allclose(vertical.mean() / weight, 1.0, atol=0.05)
    assert provenance["engine"] == "moco" and len(provenance["model_sha256"]) == 64
    assert provenance["windows"][0]["status"] == "Solve_Succeeded"
    assert store.units_of(store.leaf_path(warehouse, "kinetics", subject, "stand_01"))[
        "ground_force_r_vy"] == "N"
    kinematics, _ = store.read_leaf(store.leaf_path(warehouse, "kinematics", subject, "stand_01"))
    assert {"knee_angle_r", "knee_angle_r_speed", "knee_angle_r_accel"} <= set(kinematics)
    solves = catalog.read_catalog(warehouse, "solves")
    assert list(solves["trial"]) == ["stand_01"]
    trials = catalog.read_catalog(warehouse, "trials").set_index("trial")
    assert trials.loc["stand_01", "residual_force_rms_bw"] < 0.05

    # Nothing new: nothing runs, no file is touched, and the check is quick (the issue asks
    # under 10 s; it reads one subject.json per subject and stats the outputs).
    before = _snapshot(root)
    started = time.perf_counter()
    assert _build(root) == []
    seconds = time.perf_counter() - started
    assert _snapshot(root) == before
    assert seconds < 10, f"re-running a finished BuildDataset took {seconds:.1f} s"

    # A new trial arrives: it is the only thing solved.
    folder = root / "raw" / subject
    shutil.copy(folder / "static.c3d", folder / "stand_02.c3d")
    assert _solved(_build(root)) == ["stand_02"]

    # A changed Moco setting: new artifacts beside the old ones, nothing overwritten.
    before = sorted(p.name for p in (root / "artifacts" / "TrackMoco" / subject / "stand_01")
                    .iterdir())
    changed = _build(root, {("TrackMoco", "mesh_interval"): "0.3"})
    after = sorted(p.name for p in (root / "artifacts" / "TrackMoco" / subject / "stand_01")
                   .iterdir())
    assert len(before) == 1 and len(after) == 2 and before[0] in after
    assert _solved(changed) == ["stand_01", "stand_02"]


def test_bad_trial_is_a_failures_row_and_the_rest_goes_on(lab, tmp_path):
    """Ingest only (no solves): a corrupt C3D beside good trials."""
    import tasks

    root, subject = lab
    raw = tmp_path / "raw"
    shutil.copytree(root / "raw" / subject, raw / subject)
    (raw / subject / "broken_01.c3d").write_bytes(b"\x00" * 100)
    config = luigi.configuration.get_config()
    config.set("paths", "raw", str(raw))
    config.set("paths", "warehouse", str(tmp_path / "warehouse"))
    config.set("paths", "artifacts", str(tmp_path / "artifacts"))
    result = luigi.build([tasks.IngestRaw()], local_scheduler=True, detailed_summary=True,
                         log_level="WARNING")
    assert not result.scheduling_succeeded or result.status.name != "SUCCESS"
    failures = catalog.read_catalog(tmp_path / "warehouse", "failures")
    assert list(failures["trial"]) == ["broken_01"]
    assert failures.iloc[0]["stage"] == "ingest" and "broken_01.c3d" in failures.iloc[0]["file"]
    ingested = store.read_table(tmp_path / "warehouse", "markers")
    good = {p.stem for p in (raw / subject).glob("*.c3d")} - {"broken_01"}
    assert len(good) >= 2 and set(ingested["trial"].unique()) == good
