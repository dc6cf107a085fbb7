"""Ground reaction forces per foot: plates (or a _grf.mot) to OpenSim's `ground_force_r_*` columns.

Every force source (one plate, or one group of columns of a .mot) becomes a `WrenchSeries`: force
and moment about OpenSim's origin, in OpenSim's frame (Y up). Moments about a fixed point add
and resample linearly, so feet standing on several plates, filtering and resampling are exact;
the centre of pressure is computed only at the end, on the floor plane, from the summed wrench.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.errors import IngestError
from pipeline.signal import finite_runs, lowpass, resample

# Substrings of foot marker names (case-insensitive), per side by the name's R/L prefix or suffix.
FOOT_PATTERNS = ("HEE", "HEEL", "CAL", "TOE", "MT", "MH")
SIDES = ("r", "l")


@dataclass
class WrenchSeries:
    """One force source in OpenSim's frame: force (n, 3) N and moment about the origin (n, 3)
    N·m at `times` (s); `height` (m) is the Y of its surface; `side` is set where the source
    already belongs to a foot (a `ground_force_r_*` group of a .mot)."""

    label: str
    times: np.ndarray
    force: np.ndarray
    moment: np.ndarray
    height: float = 0.0
    side: str | None = None

    @property
    def rate_hz(self) -> float:
        return 1.0 / float(np.median(np.diff(self.times)))

    def contacts(self, threshold_n: float, min_contact_s: float) -> list[tuple[int, int]]:
        """Sample ranges [a, b) with vertical force >= threshold lasting at least min_contact_s
        (shorter runs are noise around the threshold, not steps)."""
        runs = finite_runs(self.force[:, 1] >= threshold_n)
        return [(a, b) for a, b in runs if (b - a) / self.rate_hz >= min_contact_s]


def cop_on_floor(force: np.ndarray, moment: np.ndarray, height: float):
    """Centre of pressure on the plane Y = height and the free moment there (Y up).

    force, moment: (n, 3), moment about the origin. Returns cop (n, 3) m and torque (n, 3) N·m
    (only its Y component is non-zero): the point where the wrench's moment is purely vertical.
    """
    fx, fy, fz = force.T
    mx, _, mz = moment.T
    with np.errstate(divide="ignore", invalid="ignore"):
        cop = np.column_stack([(mz + height * fx) / fy, np.full(len(fy), height),
                               (height * fz - mx) / fy])
    return cop, moment - np.cross(cop, force)


def series_from_plate(plate, rotation: np.ndarray) -> WrenchSeries:
    """A C3D force plate (lab frame) as a WrenchSeries in OpenSim's frame (v' = R v)."""
    return WrenchSeries(label=f"plate{plate.index}", times=plate.times,
                        force=plate.force @ rotation.T,
                        moment=plate.moment_about(np.zeros(3)) @ rotation.T,
                        height=float((rotation @ plate.centre)[1]))


def series_from_mot(df: pd.DataFrame, rotation: np.ndarray, threshold_n: float,
                    file=None) -> list[WrenchSeries]:
    """Force groups of an OpenSim GRF .mot (N, m, N·m): `ground_force_r_vx` ... per foot, or
    `ground_force_vx`, `1_ground_force_vx` ... per plate; torque columns are optional."""
    times = df.index.to_numpy(dtype=np.float64)
    out = []
    for col in df.columns:
        if not (col.endswith("vx") and "force" in col):
            continue
        stem = col[:-2]
        need = [stem + k for k in ("vx", "vy", "vz", "px", "py", "pz")]
        missing = [c for c in need if c not in df.columns]
        if missing:
            raise IngestError(f"GRF columns {missing} missing for {col}", file=file,
                              hint="use OpenSim's naming: <prefix>vx/vy/vz, px/py/pz")
        tstem = stem.replace("force", "torque")
        f = df[need[:3]].to_numpy(dtype=np.float64) @ rotation.T
        p = df[need[3:]].to_numpy(dtype=np.float64) @ rotation.T
        tcols = [tstem + a for a in "xyz"]
        t = (df[tcols].to_numpy(dtype=np.float64) @ rotation.T
             if all(c in df.columns for c in tcols) else np.zeros_like(f))
        loaded = f[:, 1] >= threshold_n
        p = np.where(loaded[:, None], p, 0.0)  # CoP columns are garbage while unloaded
        label = stem.rstrip("_")
        side = _side_of(re.sub(r"(ground_)?force_?", "", stem).strip("_") or "-")
        heights = p[loaded, 1]
        out.append(WrenchSeries(label=label, times=times, force=f, moment=t + np.cross(p, f),
                                height=float(np.median(heights)) if len(heights) else 0.0,
                                side=side if side in SIDES and len(stem) > 1 else None))
    return out


def _side_of(name: str) -> str | None:
    """'r' / 'l' from a marker or column name: R/L prefix or suffix (RHEE, r_heel, heel_L)."""
    n = name.rpartition(":")[2].upper()
    if n in ("R", "L"):
        return n.lower()
    for side in ("R", "L"):
        if n.startswith(side) or n.endswith("_" + side) or n.startswith("RIGHT" if side == "R"
                                                                          else "LEFT"):
            return side.lower()
    return None


def foot_marker_names(names: list[str], foot_markers=None) -> dict[str, list[str]]:
    """Foot markers per side. foot_markers: None (FOOT_PATTERNS), a list of name substrings, or
    an explicit {"r": [...], "l": [...]} mapping of marker names."""
    if isinstance(foot_markers, dict):
        return {s: [n for n in foot_markers.get(s, []) if n in names] for s in SIDES}
    patterns = [p.upper() for p in (foot_markers or FOOT_PATTERNS)]
    out: dict[str, list[str]] = {s: [] for s in SIDES}
    for name in names:
        bare = name.rpartition(":")[2].upper()
        side = _side_of(bare)
        if side and any(p in bare for p in patterns):
            out[side].append(name)
    return out


def assign_feet(series: list[WrenchSeries], markers: pd.DataFrame, *, foot_markers=None,
                threshold_n: float, min_contact_s: float, max_distance_m: float,
                file=None) -> list[dict]:
    """Which foot made each contact: the side whose foot-marker centroid is horizontally nearest
    the CoP (median over the contact's marker frames), within max_distance_m.

    Returns one record per contact: label, start_s, end_s, side ("r", "l" or None when no foot
    was near: someone else, a hand, a dropped object), distance_m.
    """
    from pipeline.trial import marker_names

    feet = foot_marker_names(marker_names(markers.columns), foot_markers)
    t_markers = markers.index.to_numpy(dtype=np.float64)
    centroids = {}
    for side, names in feet.items():
        if names:
            cols = [f"{n}_{a}" for n in names for a in "xyz"]
            xyz = markers[cols].to_numpy(dtype=np.float64).reshape(len(markers), -1, 3)
            with warnings.catch_warnings():  # frames with no foot marker seen give NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                centroids[side] = np.nanmean(xyz, axis=1)  # (frames, 3)
    records = []
    for s in series:
        for a, b in s.contacts(threshold_n, min_contact_s):
            t0, t1 = float(s.times[a]), float(s.times[b - 1])
            rec = {"label": s.label, "start_s": t0, "end_s": t1, "side": s.side,
                   "distance_m": float("nan")}
            if s.side is None:
                if not centroids:
                    raise IngestError(
                        "force plates are loaded but no foot markers were found to tell which "
                        "foot stepped on them", file=file,
                        hint=f"pass foot_markers= (names containing one of {FOOT_PATTERNS} with "
                             "an R/L prefix are found automatically)")
                frames = np.flatnonzero((t_markers >= t0) & (t_markers <= t1))
                k = np.clip(np.round((t_markers[frames] - s.times[0]) * s.rate_hz).astype(int),
                            a, b - 1)
                cop, _ = cop_on_floor(s.force[k], s.moment[k], s.height)
                best = (np.inf, None)
                for side, c in centroids.items():
                    d = np.hypot(*(c[frames][:, [0, 2]] - cop[:, [0, 2]]).T)
                    d = d[np.isfinite(d)]
                    if len(d) and np.median(d) < best[0]:
                        best = (float(np.median(d)), side)
                rec["distance_m"] = best[0] if np.isfinite(best[0]) else float("nan")
                rec["side"] = best[1] if best[0] <= max_distance_m else None
            records.append(rec)
    return records


def grf_columns(side: str) -> list[str]:
    """OpenSim's per-foot GRF columns, in grf_walk.mot's order."""
    return ([f"ground_force_{side}_v{a}" for a in "xyz"] +
            [f"ground_force_{side}_p{a}" for a in "xyz"] +
            [f"ground_torque_{side}_{a}" for a in "xyz"])


def foot_grf(series: list[WrenchSeries], contacts: list[dict], times: np.ndarray, *,
             threshold_n: float, cutoff_hz: float | None = None, order: int = 4) -> pd.DataFrame:
    """Per-foot GRF at `times` (s): force N, CoP m (NaN while the foot is off the plates), free
    moment N·m, columns `grf_columns("r") + grf_columns("l")`.

    Each source's samples inside its contacts are summed into the foot they belong to as force
    and moment about the origin, low-passed at cutoff_hz (if given) at the source rate, resampled
    to `times` (with an anti-alias low-pass when the source is faster); below threshold_n of
    vertical force the foot's force and torque are set to 0 and its CoP to NaN.
    """
    by_label = {s.label: s for s in series}
    parts: dict[str, list] = {side: [] for side in SIDES}
    heights: dict[str, list] = {side: [] for side in SIDES}
    for label, s in by_label.items():
        for side in SIDES:
            mask = np.zeros(len(s.times), dtype=bool)
            for rec in contacts:
                if rec["label"] == label and rec["side"] == side:
                    mask |= (s.times >= rec["start_s"] - 1e-12) & (s.times <= rec["end_s"] + 1e-12)
            if not mask.any():
                continue
            wrench = np.where(mask[:, None], np.hstack([s.force, s.moment]), 0.0)  # (n, 6)
            if cutoff_hz:
                wrench = lowpass(wrench, s.rate_hz, cutoff_hz, order)
            parts[side].append(resample(wrench, s.times, times, order=order))
            heights[side].append(s.height)
    columns = {}
    for side in SIDES:
        if parts[side]:
            w = np.nan_to_num(np.sum(parts[side], axis=0))  # (frames, 6); outside span -> 0
        else:
            w = np.zeros((len(times), 6))
        force, moment = w[:, :3], w[:, 3:]
        cop, torque = cop_on_floor(force, moment, float(np.mean(heights[side] or [0.0])))
        off = ~(force[:, 1] >= threshold_n)
        force[off], torque[off], cop[off] = 0.0, 0.0, np.nan
        for name, values in zip(grf_columns(side), np.hstack([force, cop, torque]).T,
                                strict=True):
            columns[name] = values
    return pd.DataFrame(columns, index=pd.Index(np.asarray(times, dtype=float), name="time"))


def plate_table(series: list[WrenchSeries], *, threshold_n: float) -> pd.DataFrame:
    """Per-plate GRF at the plates' own rate in OpenSim's classic naming: `ground_force_vx` ...
    for the first plate, `1_ground_force_vx` ... for the second, and so on. Below threshold_n the
    plate's force and torque are 0 and its CoP NaN."""
    columns = {}
    for k, s in enumerate(series):
        prefix = "" if k == 0 else f"{k}_"
        cop, torque = cop_on_floor(s.force, s.moment, s.height)
        force = s.force.copy()
        off = ~(force[:, 1] >= threshold_n)
        force[off], torque[off], cop[off] = 0.0, 0.0, np.nan
        names = ([f"{prefix}ground_force_v{a}" for a in "xyz"] +
                 [f"{prefix}ground_force_p{a}" for a in "xyz"] +
                 [f"{prefix}ground_torque_{a}" for a in "xyz"])
        for name, values in zip(names, np.hstack([force, cop, torque]).T, strict=True):
            columns[name] = values
    return pd.DataFrame(columns, index=pd.Index(series[0].times, name="time"))
