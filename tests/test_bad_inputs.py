"""Issue 8, part 1: a corpus of bad lab input run through `luigi --module tasks BuildDataset` as one
batch beside one good subject (so Moco runs once). Each bad input must end as exactly one row of
failures.parquet naming its file, stage and what to do; the good trial (a non-ASCII name) must
still become ground truth; the exit status and summary must say what happened.
"""
import numpy as np
import pytest
from data_factory import (
    good_subject,
    run_luigi,
    run_warehouse,
    static_markers,
    tiny_config,
    write_bad_corpus,
    write_markers_c3d,
)

from warehouse import catalog, store

GOOD_TRIAL = "stand_ü_01"  # non-ASCII names are legal and must work end to end


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = good_subject(root / "raw", trials=(GOOD_TRIAL,))
    expected = write_bad_corpus(root / "raw", good)
    tiny_config(root)
    result = run_luigi(root, "BuildDataset", "--local-scheduler", "--workers", "1")
    return root, expected, result


@pytest.mark.slow
def test_every_bad_input_is_one_failures_row_and_the_good_trial_completes(batch):
    root, expected, result = batch
    log = result.stdout + result.stderr
    assert len({e.kind for e in expected}) >= 15
    failures = catalog.read_catalog(root / "warehouse", "failures")
    got = {(r.subject, r.trial, r.stage): r for r in failures.itertuples()}
    want = {(e.subject, e.trial, e.stage): e for e in expected}
    assert sorted(got) == sorted(want), log[-4000:]
    for key, row in got.items():
        assert want[key].file_mentions in row.file, (want[key].kind, row.file)
        assert row.problem and row.hint, (want[key].kind, row)

    # The good trial: ground truth with its solve logged once, under its non-ASCII name.
    trials = catalog.read_catalog(root / "warehouse", "trials").set_index(["subject", "trial"])
    assert bool(trials.loc[("S01", GOOD_TRIAL), "ground_truth"])
    kinetics, provenance = store.read_leaf(store.leaf_path(root / "warehouse", "kinetics", "S01",
                                                           GOOD_TRIAL))
    weight = trials.loc[("S01", GOOD_TRIAL), "mean_vgrf_bw"]
    np.testing.assert_allclose(weight, 1.0, atol=0.05)
    solves = catalog.read_catalog(root / "warehouse", "solves")
    assert list(solves["trial"]) == [GOOD_TRIAL]
    assert provenance["windows"][0]["status"] == "Solve_Succeeded"

    # Exit status: Luigi's default is 0 whatever failed; the lab's luigi.cfg [retcode] makes it
    # say so. A requires() that raised (S_no_static) is a scheduling error, which outranks a
    # failed run() (30), so 35.
    assert result.returncode == 35, log[-3000:]
    assert "failed" in log and "WriteGroundTruth" in log

    # The warehouse is whole, and the failures command lists every row.
    check = run_warehouse(root, "check")
    assert check.returncode == 0, check.stdout
    listing = run_warehouse(root, "failures")
    assert listing.returncode == 1
    assert f"{len(expected)} failure(s)" in listing.stdout and "what to do:" in listing.stdout


@pytest.mark.slow
def test_rerun_records_nothing_twice(batch):
    """Running the same batch again re-tries the bad trials and rewrites their rows in place."""
    root, expected, _ = batch
    before = catalog.read_catalog(root / "warehouse", "failures")
    result = run_luigi(root, "BuildDataset", "--local-scheduler", "--workers", "1")
    after = catalog.read_catalog(root / "warehouse", "failures")
    assert result.returncode == 35
    assert len(after) == len(before) == len(expected)
    assert list(catalog.read_catalog(root / "warehouse", "solves")["trial"]) == [GOOD_TRIAL]


def test_a_trial_longer_than_one_window_is_planned_as_windows(tmp_path):
    """A 6 s trial is not a failure: TrackMoco splits it into overlapping windows of at most
    max_window_s (checked on the plan; solving it is the ground-truth tests' business)."""
    import luigi

    import tasks
    from pipeline.windows import plan_windows

    good = good_subject(tmp_path / "raw", trials=())
    names, lab, rate = static_markers(good)
    write_markers_c3d(good / "long_walk_01.c3d", names, np.concatenate([lab] * 4), rate)
    tiny_config(tmp_path)
    luigi.configuration.get_config().read(str(tmp_path / "luigi.cfg"))
    assert luigi.build([tasks.IngestTrial(subject="S01", trial="long_walk_01",
                                          path=str(good / "long_walk_01.c3d"))],
                       local_scheduler=True, log_level="WARNING")
    markers, _ = store.read_leaf(store.leaf_path(tmp_path / "warehouse", "markers", "S01",
                                                 "long_walk_01"))
    times = markers.index.to_numpy()
    track = tasks.TrackMoco(subject="S01", trial="long_walk_01")
    windows = plan_windows(times[0], times[-1], track.max_window_s, track.overlap_s)
    assert times[-1] == pytest.approx((4 * len(lab) - 1) / rate)
    assert len(windows) == 4
    assert windows[0][0] == times[0] and windows[-1][1] == times[-1]
    assert all(t1 - t0 <= track.max_window_s + 1e-9 for t0, t1 in windows)
    overlaps = [a[1] - b[0] for a, b in zip(windows, windows[1:])]
    np.testing.assert_allclose(overlaps, track.overlap_s)
    assert catalog.read_catalog(tmp_path / "warehouse", "failures").empty
