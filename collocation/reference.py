"""The tracked reference of one window, prepared as Moco's MocoTrack prepares it.

`osim/moco_track.py` feeds MocoTrack the IK coordinates through `TabOpLowPassFilter` (OpenSim's
`TableUtilities::filterLowpass` with padding: the table mirrored-and-negated by half its length at
each end, then `Signal::LowpassIIR`, a zero-lag third-order Butterworth) and tracks speeds taken
as the derivatives of the filtered coordinates (`track_reference_position_derivatives`). MocoTrack
interpolates the table with splines; so do we, with quintic splines (GCVSpline's degree) that
also give speeds and accelerations for the initial guess. Radians and metres throughout.
"""
from __future__ import annotations

import math

import numpy as np
from scipy.interpolate import make_interp_spline
from scipy.signal import butter, sosfiltfilt

from pipeline.errors import IngestError
from pipeline.opensim_files import read_sto, to_radians


def lowpass_like_opensim(values: np.ndarray, rate_hz: float, cutoff_hz: float) -> np.ndarray:
    """Zero-lag 3rd-order Butterworth along axis 0 with odd (reflect-and-negate) padding of half
    the signal's length, as `TabOpLowPassFilter` does. values: (frames, channels)."""
    n = values.shape[0]
    if n < 4:
        raise IngestError(f"{n} frames are too few to filter (need at least 4)")
    sos = butter(3, cutoff_hz / (0.5 * rate_hz), output="sos")
    return sosfiltfilt(sos, values, axis=0, padtype="odd", padlen=min(n // 2, n - 1))


class Reference:
    """Filtered coordinates of an IK table as splines of time: q(t), q'(t), q''(t)."""

    def __init__(self, path, cutoff_hz: float):
        df = read_sto(path)
        if df.attrs.get("in_degrees"):
            df = to_radians(df)
        times = df.index.to_numpy(dtype=float)
        if len(times) < 6:
            raise IngestError(f"{len(times)} frames are too few to track", file=path)
        steps = np.diff(times)
        if np.any(steps <= 0):
            raise IngestError("time column is not increasing", file=path)
        uniform = np.linspace(times[0], times[-1], len(times))
        values = df.to_numpy(dtype=float)
        if np.max(np.abs(uniform - times)) > 1e-9:  # resample, as filterLowpass does
            values = make_interp_spline(times, values, k=5, axis=0)(uniform)
        rate = (len(uniform) - 1) / (uniform[-1] - uniform[0])
        filtered = lowpass_like_opensim(values, rate, cutoff_hz)
        self.names = list(df.columns)
        self.t_first, self.t_last = float(uniform[0]), float(uniform[-1])
        self._spline = make_interp_spline(uniform, filtered, k=5, axis=0)

    def __call__(self, names: list[str], times: np.ndarray, derivative: int = 0) -> np.ndarray:
        """(len(times), len(names)) values (derivative 0), speeds (1) or accelerations (2)."""
        missing = [n for n in names if n not in self.names]
        if missing:
            raise IngestError(f"reference has no columns {missing}")
        cols = [self.names.index(n) for n in names]
        return self._spline(np.asarray(times, dtype=float), nu=derivative)[:, cols]


def mesh_window(t0: float, t1: float, t_first: float, t_last: float, interval: float):
    """(t0, t1, intervals) of the solved window: Moco's grid t0 + k * interval ending on the
    last grid point inside both the request and the reference (see osim/moco_track.py)."""
    start = math.ceil(max(t0, t_first) * 1e9) / 1e9
    available = math.floor(min(t1, t_last) * 1e9) / 1e9
    n = int(math.floor((available - start) / interval + 1e-9))
    while n > 1 and start + n * interval > available:
        n -= 1
    if n < 1:
        raise IngestError(f"window [{t0}, {t1}] s holds no mesh interval of {interval} s "
                          f"inside the reference [{t_first}, {t_last}] s")
    return start, start + n * interval, n
