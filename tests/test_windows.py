"""Solve windows: coverage, length limit, and exact stitching of consistent pieces."""
import numpy as np
import pandas as pd
import pytest

from pipeline.windows import plan_windows, stitch


def test_short_trial_is_one_window():
    assert plan_windows(0.5, 1.7, max_s=2.0) == [(0.5, 1.7)]


@pytest.mark.parametrize("duration", [2.01, 3.3, 7.9, 20.0])
def test_windows_cover_overlap_and_respect_the_limit(duration):
    windows = plan_windows(1.0, 1.0 + duration, max_s=2.0, overlap_s=0.25)
    assert windows[0][0] == 1.0 and windows[-1][1] == pytest.approx(1.0 + duration)
    for (_, a1), (b0, _) in zip(windows, windows[1:]):
        assert a1 - b0 == pytest.approx(0.25)
    assert all(t1 - t0 <= 2.0 + 1e-12 for t0, t1 in windows)


def test_stitching_pieces_of_one_signal_returns_that_signal():
    times = np.linspace(0, 5, 501)
    signal = pd.DataFrame({"q": np.sin(times), "u": np.cos(3 * times)},
                          index=pd.Index(times, name="time"))
    pieces = [signal.loc[t0:t1] for t0, t1 in plan_windows(0, 5, max_s=2.0, overlap_s=0.3)]
    out = stitch(pieces, times)
    np.testing.assert_allclose(out.to_numpy(), signal.to_numpy(), atol=1e-12)


def test_stitching_blends_linearly_across_the_overlap():
    t = np.linspace(0, 2, 21)
    a = pd.DataFrame({"x": np.zeros(11)}, index=pd.Index(t[:11], name="time"))   # 0..1
    b = pd.DataFrame({"x": np.ones(11)}, index=pd.Index(t[10:] - 0.5, name="time"))  # 0.5..1.5
    out = stitch([a, b], np.array([0.25, 0.5, 0.75, 1.0, 1.25]))
    np.testing.assert_allclose(out["x"], [0.0, 0.0, 0.5, 1.0, 1.0], atol=1e-12)
