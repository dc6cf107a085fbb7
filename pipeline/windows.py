"""Split long trials into overlapping solve windows and stitch the solutions back together.

Moco's cost grows faster than linearly with window length (DESIGN.md: 0.5 s took 38 min, 1.1 s
about 80 min), so a trial is solved as windows of at most `max_s` seconds that overlap by
`overlap_s`; the stitched result blends neighbours linearly across the overlap, where both
solutions are away from their free boundary conditions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def plan_windows(t_start: float, t_end: float, max_s: float = 2.0,
                 overlap_s: float = 0.2) -> list[tuple[float, float]]:
    """Windows [(t0, t1), ...] covering [t_start, t_end], each at most max_s long."""
    if not t_end > t_start:
        raise ValueError(f"empty time range {t_start}..{t_end}")
    if not 0 <= overlap_s < max_s:
        raise ValueError(f"overlap {overlap_s} s must be below the window length {max_s} s")
    duration = t_end - t_start
    if duration <= max_s:
        return [(t_start, t_end)]
    # Equal windows: n windows of length L overlap by o cover n*L - (n-1)*o.
    n = int(np.ceil((duration - overlap_s) / (max_s - overlap_s)))
    length = (duration + (n - 1) * overlap_s) / n
    starts = t_start + np.arange(n) * (length - overlap_s)
    windows = [(float(s), float(s + length)) for s in starts]
    # Rounding must not cut the last frame off: the ends are the trial's own.
    windows[-1] = (windows[-1][0], float(t_end))
    return windows


def stitch(pieces: list[pd.DataFrame], times: np.ndarray) -> pd.DataFrame:
    """Resample each window's table onto `times` and blend neighbours linearly in the overlaps."""
    if not pieces:
        raise ValueError("nothing to stitch")
    columns = list(pieces[0].columns)
    total = np.zeros((len(times), len(columns)))
    weight = np.zeros(len(times))
    bounds = [(p.index[0], p.index[-1]) for p in pieces]
    for i, piece in enumerate(pieces):
        lo, hi = bounds[i]
        inside = (times >= lo - 1e-9) & (times <= hi + 1e-9)
        w = np.ones(len(times))
        # Ramp down where the next window takes over, ramp up where the previous one hands over.
        if i + 1 < len(pieces) and bounds[i + 1][0] < hi:
            a, b = bounds[i + 1][0], hi
            w = np.where(times > a, (b - times) / (b - a), w)
        if i > 0 and bounds[i - 1][1] > lo:
            a, b = lo, bounds[i - 1][1]
            w = np.where(times < b, (times - a) / (b - a), w)
        w = np.clip(w, 0.0, 1.0) * inside
        values = np.column_stack([np.interp(times, piece.index.to_numpy(), piece[c].to_numpy())
                                  for c in columns])
        total += values * w[:, None]
        weight += w
    if np.any(weight <= 0):
        raise ValueError("windows do not cover every requested time")
    return pd.DataFrame(total / weight[:, None], index=pd.Index(times, name="time"),
                        columns=columns)
