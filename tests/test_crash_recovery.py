"""Issue 8, part 3: `luigi --module tasks BuildDataset` killed with SIGKILL at several points and run
again; the run completes and `python -m warehouse check` finds no partial, orphaned or
duplicate data (staging leftovers of the killed writers are reported as harmless and cleaned).

Kill points, in order, on one tiny trial (quiet standing, coarse mesh):
1. ingest: after a markers leaf is staged, before its rename (store's crash hook);
2. ingest: inside the trials.parquet catalog write (the leaf is published, its row is not);
3. during the Moco solve (the solver process must die with its worker);
4. publishing: between the kinematics and kinetics leaves (check must see the half-published
   trial);
5. publishing: inside the solves.parquet write, after both leaves are in place.
"""
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from data_factory import good_subject, luigi_command, run_luigi, run_warehouse, tiny_config

from warehouse import catalog, store
from warehouse.store import CRASH_ENV

TRIAL = "stand_01"
KILLED = -signal.SIGKILL


def _solvers(root: Path) -> list[int]:
    """Pids of Moco window processes working for this lab (their spec lies under root)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            cwd = str((proc / "cwd").resolve())
        except (OSError, ValueError):
            continue
        if "osim.moco_track" in cmdline and cwd.startswith(str(root)):
            pids.append(int(proc.name))
    return pids


def _kill_during_solve(root: Path) -> int:
    """Start BuildDataset, wait until a Moco window process is solving, SIGKILL the worker;
    returns the worker's exit status after checking that the solver died with it."""
    argv, env = luigi_command(root, "BuildDataset", "--local-scheduler", "--workers", "1")
    worker = subprocess.Popen(argv, cwd=root, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    try:
        while not _solvers(root):
            assert worker.poll() is None, "BuildDataset ended before its solve started"
            assert time.monotonic() < deadline, "no solve started within 10 min"
            time.sleep(0.5)
        time.sleep(2.0)  # inside IPOPT by now
        worker.send_signal(signal.SIGKILL)
        code = worker.wait(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    for _ in range(100):  # PR_SET_PDEATHSIG: the kernel kills the orphaned solver
        if not _solvers(root):
            break
        time.sleep(0.1)
    assert not _solvers(root), "a Moco solve outlived its killed worker"
    return code


def _check(root: Path) -> tuple[int, str]:
    result = run_warehouse(root, "check")
    return result.returncode, result.stdout


@pytest.mark.slow
def test_build_dataset_survives_sigkill_at_every_stage(tmp_path):
    root = tmp_path
    good_subject(root / "raw", trials=(TRIAL,))
    tiny_config(root)
    warehouse = root / "warehouse"
    survived = []

    # 1-2. Ingest, killed while writing a leaf, then while writing the catalog.
    # A leaf killed before its rename is invisible (exit 0, a warning); a leaf whose catalog
    # row was killed is published but unknown to trials.parquet: check must say so.
    hooks = [("markers leaf", f"/markers/subject=S01/trial={TRIAL}/", 0, "staging-leftover"),
             ("trials catalog", "/trials.parquet", 1, "orphan-leaf")]
    for name, hook, status, finding in hooks:
        result = run_luigi(root, "BuildDataset", "--local-scheduler", env={CRASH_ENV: hook})
        assert result.returncode == KILLED, (name, result.stderr[-2000:])
        code, report = _check(root)
        assert code == status and finding in report, (name, report)
        survived.append(name)

    # 3. During the Moco solve.
    assert _kill_during_solve(root) == KILLED
    code, report = _check(root)
    assert code == 0, report
    assert "TrackMoco" in report and "staging-leftover" in report
    survived.append("Moco solve")

    # 4. Between the two ground-truth leaves: the check sees a half-published trial.
    result = run_luigi(root, "BuildDataset", "--local-scheduler",
                       env={CRASH_ENV: f"/kinetics/subject=S01/trial={TRIAL}/"})
    assert result.returncode == KILLED, result.stderr[-3000:]
    assert store.leaf_path(warehouse, "kinematics", "S01", TRIAL).exists()
    code, report = _check(root)
    assert code == 1 and "orphan-leaf" in report, report
    survived.append("kinetics leaf")

    # 5. In the solve log's write, after both leaves are in place.
    result = run_luigi(root, "BuildDataset", "--local-scheduler",
                       env={CRASH_ENV: "/solves.parquet"})
    assert result.returncode == KILLED, result.stderr[-3000:]
    code, report = _check(root)
    assert code == 1 and "orphan-leaf" in report, report
    survived.append("solves catalog")

    # The re-run completes without solving again (the solve of run 4 is kept) ...
    result = run_luigi(root, "BuildDataset", "--local-scheduler")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TrackMoco" not in _ran(result.stderr)

    # ... and the warehouse is whole: only harmless staging leftovers, which --clean removes.
    code, report = _check(root)
    assert code == 0, report
    cleaned = run_warehouse(root, "check", "--clean", "--min-age-s", "0")
    assert cleaned.returncode == 0 and "removed" in cleaned.stdout, cleaned.stdout
    assert "0 problem(s), 0 warning(s)" in cleaned.stdout, cleaned.stdout
    assert not [p for p in root.rglob("_*") if p.name != "_catalog.lock"
                and "raw" not in p.relative_to(root).parts]

    # Exactly one of everything.
    solves = catalog.read_catalog(warehouse, "solves")
    assert list(solves["trial"]) == [TRIAL]
    trials = catalog.read_catalog(warehouse, "trials")
    assert sorted(trials["trial"]) == ["stand_01", "static"]
    assert bool(trials.set_index("trial").loc[TRIAL, "ground_truth"])
    kinematics = store.read_table(warehouse, "kinematics")
    kinetics = store.read_table(warehouse, "kinetics")
    assert len(kinematics) == len(kinetics) > 0
    pd.testing.assert_index_equal(pd.Index(kinematics["time"]), pd.Index(kinetics["time"]))
    tracked = [p for p in (root / "artifacts" / "TrackMoco" / "S01" / TRIAL).iterdir()]
    assert len(tracked) == 1 and not tracked[0].name.startswith("_")
    assert catalog.read_catalog(warehouse, "failures").empty
    assert len(survived) == 5


def _ran(log: str) -> str:
    """The lines of a Luigi log that say a task ran."""
    return "\n".join(line for line in log.splitlines() if "running" in line.lower())


# -- warehouse check on hand-made warehouses (fast) ---------------------------------------------
def _tiny_warehouse(root: Path, frames: int = 5) -> Path:
    """One ground-truth trial, written the way the tasks write it."""
    warehouse = root / "warehouse"
    time_s = pd.Index([i / 100 for i in range(frames)], name="time")
    provenance = {"settings_hash": "abc", "model_sha256": "0" * 64,
                  "windows": [{"status": "Solve_Succeeded"}]}
    store.write_leaf(warehouse, "markers", "S01", "t1",
                     pd.DataFrame({"RASI_x": 0.1, "RASI_y": 1.0, "RASI_z": 0.2}, index=time_s),
                     provenance={"settings_hash": "i", "source_sha256": "f" * 64})
    store.write_leaf(warehouse, "kinematics", "S01", "t1",
                     pd.DataFrame({"knee_angle_r": 0.3}, index=time_s), provenance=provenance)
    store.write_leaf(warehouse, "kinetics", "S01", "t1",
                     pd.DataFrame({"knee_angle_r_moment": 10.0}, index=time_s),
                     provenance=provenance)
    catalog.upsert(warehouse, "trials", [{"subject": "S01", "trial": "t1", "ground_truth": True}])
    catalog.upsert(warehouse, "subjects", [{"subject": "S01", "mass_kg": 70.0}])
    catalog.upsert(warehouse, "solves", [{"subject": "S01", "trial": "t1",
                                          "stage": "moco_window_0", "settings_hash": "abc"}])
    return warehouse


def _kinds(warehouse: Path) -> list[tuple[str, str]]:
    from warehouse.check import check_warehouse

    return sorted((f.level, f.kind) for f in check_warehouse(warehouse))


def test_check_passes_a_whole_warehouse_and_names_each_kind_of_damage(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    warehouse = _tiny_warehouse(tmp_path)
    assert _kinds(warehouse) == []
    leaf = store.leaf_path(warehouse, "kinetics", "S01", "t1")

    # A second frame count, a column without a unit, no provenance.
    pq.write_table(pa.table({"time": [0.0, 0.01], "knee_angle_r_moment": [1.0, 2.0]}), leaf)
    assert set(_kinds(warehouse)) == {("problem", "provenance"), ("problem", "row-count"),
                                      ("problem", "schema")}
    _tiny_warehouse(tmp_path)

    # Debris: a Luigi temporary beside a leaf is read as data; `_` staging is harmless.
    (leaf.parent / "part-0.parquet-luigi-tmp-123").write_bytes(b"x")
    (leaf.parent / "_part-0.parquet.0123abcd0123abcd.tmp").write_bytes(b"x")
    assert _kinds(warehouse) == [("problem", "stray-file"), ("warning", "staging-leftover")]
    (leaf.parent / "part-0.parquet-luigi-tmp-123").unlink()

    # Half a trial: kinetics gone; then an orphan leaf of a trial the catalog does not know.
    leaf.unlink()
    assert ("problem", "missing-leaf") in _kinds(warehouse)
    _tiny_warehouse(tmp_path)
    store.write_leaf(warehouse, "markers", "S01", "t2", pd.DataFrame(
        {"RASI_x": [0.0]}, index=pd.Index([0.0], name="time")),
        provenance={"settings_hash": "i", "source_sha256": "f" * 64})
    assert ("problem", "orphan-leaf") in _kinds(warehouse)

    # Duplicate catalog keys (a writer that bypassed upsert) and a solve log that disagrees.
    trials = catalog.read_catalog(warehouse, "trials")
    trials = pd.concat([trials, trials])
    pq.write_table(pa.Table.from_pandas(trials, preserve_index=False),
                   warehouse / "trials.parquet")
    catalog.upsert(warehouse, "solves", [{"subject": "S01", "trial": "t1",
                                          "stage": "moco_window_1", "settings_hash": "abc"}])
    kinds = _kinds(warehouse)
    assert ("problem", "duplicate-key") in kinds and ("problem", "solve-log") in kinds


def test_clean_removes_only_old_staging_and_never_other_underscore_names(tmp_path):
    import os

    from warehouse.__main__ import main

    warehouse = _tiny_warehouse(tmp_path)
    folder = store.leaf_path(warehouse, "markers", "S01", "t1").parent
    old = folder / "_part-0.parquet.0123abcd0123abcd.tmp"
    young = folder / "_part-0.parquet.ffffabcd0123abcd.tmp"
    artifacts = tmp_path / "artifacts" / "TrackMoco" / "S01" / "t1"
    scratch = artifacts / "_0123456789.abcdef01"
    for path in (old, young, scratch / "window_0" / "solve.log"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    kept = tmp_path / "artifacts" / "_truth"
    kept.mkdir()
    hour_ago = time.time() - 7200
    for path in (old, scratch):
        os.utime(path, (hour_ago, hour_ago))
    args = ["check", "--warehouse", str(warehouse), "--artifacts", str(tmp_path / "artifacts")]
    assert main(args) == 0  # leftovers are warnings
    assert main([*args, "--clean"]) == 0
    assert not old.exists() and not scratch.exists() and young.exists() and kept.exists()
    assert (warehouse / "_catalog.lock").exists()
    # A finished ground-truth manifest whose leaves vanished is a problem.
    from tasks.base import write_json_atomic

    write_json_atomic(tmp_path / "artifacts" / "WriteGroundTruth" / "S01" / "t1" / "h.json",
                      {"leaves": [str(folder / "gone.parquet")]})
    assert main(args) == 1
