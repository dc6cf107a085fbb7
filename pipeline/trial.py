"""The Trial: one motion-capture recording, in OpenSim's frame and SI units."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

AXES = ("x", "y", "z")


def marker_columns(names: list[str]) -> list[str]:
    """Flat column names for marker positions: `RASI_x`, `RASI_y`, `RASI_z`, ..."""
    return [f"{name}_{axis}" for name in names for axis in AXES]


def marker_names(columns) -> list[str]:
    """Marker names, in order, from flat `<name>_x/_y/_z` columns."""
    names = []
    for col in columns:
        name, _, axis = col.rpartition("_")
        if axis == "x":
            names.append(name)
    return names


@dataclass
class Trial:
    """A trial after ingest.

    markers: index `time` (s), columns `<marker>_x/_y/_z`, metres, OpenSim frame (Y up, X forward
        where known), NaN where a marker was not seen.
    grf: measured ground reaction forces resampled to the marker times, or None. Columns follow
        OpenSim: `ground_force_<side>_vx/vy/vz` (N), `ground_force_<side>_px/py/pz` (m, centre of
        pressure), `ground_torque_<side>_x/y/z` (N·m, free moment), side `r`/`l` after the plates
        are assigned to feet.
    """

    subject: str
    name: str
    markers: pd.DataFrame
    grf: pd.DataFrame | None = None
    source: Path | None = None
    activity: str = "unknown"
    meta: dict = field(default_factory=dict)

    @property
    def rate_hz(self) -> float:
        t = self.markers.index.to_numpy()
        return float(1.0 / np.median(np.diff(t))) if len(t) > 1 else float("nan")

    @property
    def marker_names(self) -> list[str]:
        return marker_names(self.markers.columns)

    def marker_array(self) -> np.ndarray:
        """Positions as an array (frames, markers, 3) in metres."""
        return self.markers.to_numpy().reshape(len(self.markers), -1, 3)
