"""Signal conditioning for motion-capture data: zero-lag low-pass filtering, resampling, gaps.

Every function takes arrays of samples along axis 0 (frames) and treats NaN as "not measured":
filters run over each contiguous run of finite samples separately, so a marker gap never smears
into the data around it, and resampling never invents data inside a gap.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.signal import butter, sosfiltfilt


def finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Half-open index ranges [start, stop) of the runs of True in a 1-D boolean mask."""
    m = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(m.astype(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist(), strict=True))


def lowpass(values: np.ndarray, rate_hz: float, cutoff_hz: float, order: int = 4) -> np.ndarray:
    """Zero-lag Butterworth low-pass (forward and backward, scipy `sosfiltfilt`), NaN-aware.

    values: (frames,) or (frames, channels), sampled at `rate_hz`. `order` is the order of the
    single-pass design; running it both ways doubles the effective order and squares the gain, so
    the -3 dB point of the result lies a little below `cutoff_hz` (as in every lab's filtfilt).
    Each column is filtered over each contiguous run of finite samples; runs too short for the
    filter's edge padding (3 × filter length) are filtered with the padding the run allows, and
    runs of fewer than 2 samples are left as they are. NaN stays NaN.
    """
    if not 0 < cutoff_hz < rate_hz / 2:
        raise ValueError(f"cut-off {cutoff_hz} Hz must lie between 0 and the Nyquist frequency "
                         f"{rate_hz / 2} Hz")
    x = np.asarray(values, dtype=np.float64)
    flat = x.reshape(len(x), -1)
    out = flat.copy()
    sos = butter(order, cutoff_hz, btype="low", fs=rate_hz, output="sos")
    default_pad = 3 * (2 * len(sos) + 1)  # scipy's own default padlen for sosfiltfilt
    finite = np.isfinite(flat)
    if finite.all():  # fast path: one call over every column
        pad = min(default_pad, len(flat) - 1)
        if pad >= 1:
            out = sosfiltfilt(sos, flat, axis=0, padlen=pad)
        return out.reshape(x.shape)
    for j in range(flat.shape[1]):
        for start, stop in finite_runs(finite[:, j]):
            if stop - start < 2:
                continue
            pad = min(default_pad, stop - start - 1)
            out[start:stop, j] = sosfiltfilt(sos, flat[start:stop, j], padlen=pad)
    return out.reshape(x.shape)


def resample(values: np.ndarray, times: np.ndarray, new_times: np.ndarray, *,
             antialias: bool = True, order: int = 4) -> np.ndarray:
    """Values at `new_times` by linear interpolation, low-passed first when downsampling.

    values: (frames, ...) at `times` (s, uniform). When the new rate is lower than the old one,
    the signal is first low-passed (zero-lag Butterworth, `order`) at 40% of the new rate (80% of
    its Nyquist frequency) so that content the new rate cannot carry does not alias into it.
    Outside the span of `times`, and between samples of which either is NaN, the result is NaN.
    """
    x = np.asarray(values, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    tn = np.asarray(new_times, dtype=np.float64)
    if len(t) != len(x):
        raise ValueError(f"{len(x)} samples but {len(t)} times")
    if len(t) < 2:
        raise ValueError("resampling needs at least two samples")
    rate = 1.0 / float(np.median(np.diff(t)))
    new_rate = 1.0 / float(np.median(np.diff(tn))) if len(tn) > 1 else rate
    if antialias and new_rate < rate * 0.999:
        x = lowpass(x, rate, 0.4 * new_rate, order)
    flat = x.reshape(len(x), -1)
    # Fractional index of each new time; interpolate between floor and ceil samples.
    pos = (tn - t[0]) * rate
    inside = (pos >= -1e-9) & (pos <= len(t) - 1 + 1e-9)
    pos = np.clip(pos, 0, len(t) - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, len(t) - 1)
    w = (pos - lo)[:, None]
    out = flat[lo] * (1 - w) + flat[hi] * w
    # An exact hit on a sample must not turn NaN because its neighbour is missing.
    exact = (w[:, 0] < 1e-9)
    out[exact] = flat[lo[exact]]
    out[~inside] = np.nan
    return out.reshape((len(tn),) + x.shape[1:])


def gap_table(markers: pd.DataFrame) -> pd.DataFrame:
    """Gaps per marker: frames missing, number of gaps, longest gap (frames and seconds).

    markers: index time (s), columns `<marker>_x/_y/_z`; a marker is missing in a frame where any
    of its coordinates is NaN. Returned frame is indexed by marker name, in column order.
    """
    from pipeline.trial import marker_names

    names = marker_names(markers.columns)
    values = markers.to_numpy(dtype=np.float64).reshape(len(markers), len(names), 3)
    missing = np.isnan(values).any(axis=2)  # (frames, markers)
    dt = float(np.median(np.diff(markers.index.to_numpy()))) if len(markers) > 1 else 0.0
    rows = []
    for j, name in enumerate(names):
        runs = finite_runs(missing[:, j])
        longest = max((b - a for a, b in runs), default=0)
        rows.append({"marker": name, "missing_frames": int(missing[:, j].sum()),
                     "gaps": len(runs), "longest_gap_frames": longest,
                     "longest_gap_s": longest * dt})
    return pd.DataFrame(rows).set_index("marker")


def fill_gaps(values: np.ndarray, max_gap: int) -> np.ndarray:
    """Interior gaps of at most `max_gap` frames filled by cubic-spline interpolation per column.

    Longer gaps, and gaps at the start or end of the recording, stay NaN: inventing a marker for
    longer than a few frames is worse than leaving IK to ignore it. Columns with fewer than 4
    finite samples get linear interpolation instead.
    """
    x = np.asarray(values, dtype=np.float64)
    flat = x.reshape(len(x), -1).copy()
    for j in range(flat.shape[1]):
        col = flat[:, j]
        gaps = [(a, b) for a, b in finite_runs(np.isnan(col))
                if a > 0 and b < len(col) and b - a <= max_gap]
        if not gaps:
            continue
        method = "cubicspline" if np.isfinite(col).sum() >= 4 else "linear"
        filled = pd.Series(col).interpolate(method=method, limit_area="inside").to_numpy()
        for a, b in gaps:
            col[a:b] = filled[a:b]
    return flat.reshape(x.shape)


def hermite_resample(times: np.ndarray, values: np.ndarray, speeds: np.ndarray,
                     accels: np.ndarray, new_times: np.ndarray) -> np.ndarray:
    """Values at `new_times` of the piecewise quintic that matches values, first and second
    derivatives at every sample (scipy `BPoly.from_derivatives`).

    For trajectories that carry their own derivatives (a Moco solution: q, u and the dynamics'
    u-dot at each mesh point), this is the C2 curve consistent with all three. A spline through
    the values alone (what OpenSim's tools fit) cannot recover accelerations from points 12.5 ms
    apart, so write this curve densely before handing Moco's kinematics to those tools.
    Arrays are (frames,) or (frames, channels); times in s, strictly increasing.
    """
    from scipy.interpolate import BPoly

    t = np.asarray(times, dtype=np.float64)
    x = np.asarray(values, dtype=np.float64)
    derivatives = np.stack([x, np.asarray(speeds, dtype=np.float64).reshape(x.shape),
                            np.asarray(accels, dtype=np.float64).reshape(x.shape)], axis=1)
    # Times outside [times[0], times[-1]] extend the end pieces (quintics): smooth padding.
    curve = BPoly.from_derivatives(t, derivatives, extrapolate=True)
    return curve(np.asarray(new_times, dtype=np.float64))
