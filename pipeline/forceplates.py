"""Force plates of a C3D file (FORCE_PLATFORM types 1-4) as ground reaction wrenches, lab frame.

Conventions (those of the C3D standard, BTK, ezc3d and OpenSim's C3DFileAdapter):
- the plate frame's axes come from CORNERS: x = c1 - c2, y = c1 - c4, z = x × y, which points
  down into the plate for the usual corner order; the lab frame is the C3D's global frame;
- ORIGIN is the vector from the centre of the working surface to the sensor origin, in the plate
  frame; a positive z component is read as a sign error and flipped (as BTK and ezc3d do);
- analog values come from ezc3d already scaled, (raw - ANALOG:OFFSET) × ANALOG:SCALE ×
  ANALOG:GEN_SCALE; moment channels are converted from their ANALOG:UNITS (N·mm, N·m).

Rotated into the lab frame, the plate's outputs are the ground reaction on the subject (vertical
component positive while someone stands on the plate), the quantity OpenSim's C3DFileAdapter
reports too. Everything here is in N, m and N·m.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import IngestError
from pipeline.signal import finite_runs

CHANNELS_PER_TYPE = {1: 6, 2: 6, 3: 8, 4: 6}
DEFAULT_THRESHOLD_N = 20.0
FORCE_UNITS = {"n": 1.0, "kn": 1e3}
MOMENT_UNITS = {"nmm": 1e-3, "n.mm": 1e-3, "n*mm": 1e-3, "n·mm": 1e-3, "n mm": 1e-3,
                "nm": 1.0, "n.m": 1.0, "n*m": 1.0, "n·m": 1.0, "n m": 1.0}
LENGTH_UNITS = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}


@dataclass
class ForcePlate:
    """One force plate: its geometry and its ground reaction wrench at the analog rate.

    index: 1-based plate number of the C3D. type: FORCE_PLATFORM:TYPE (1-4).
    corners: (4, 3) m, lab frame. rotation: (3, 3) plate axes as columns in the lab frame.
    origin: (3,) m, plate frame, surface centre to sensor origin. channels: 0-based analog indices.
    force: (n, 3) N, ground reaction force on the subject, lab frame.
    moment: (n, 3) N·m, its moment about the centre of the working surface (`centre`), lab frame.
    threshold_n: vertical load below which the plate counts as unloaded (CoP undefined).
    """

    index: int
    type: int
    corners: np.ndarray
    rotation: np.ndarray
    origin: np.ndarray
    channels: tuple[int, ...]
    rate_hz: float
    force: np.ndarray
    moment: np.ndarray
    threshold_n: float = DEFAULT_THRESHOLD_N

    @property
    def centre(self) -> np.ndarray:
        """Centre of the working surface (mean of the corners), m, lab frame."""
        return self.corners.mean(axis=0)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal of the working surface pointing up, out of the plate (minus plate z)."""
        return -self.rotation[:, 2]

    @property
    def times(self) -> np.ndarray:
        return np.arange(len(self.force)) / self.rate_hz

    @property
    def vertical_force(self) -> np.ndarray:
        """Ground reaction along the surface normal, N (positive when someone stands on it)."""
        return self.force @ self.normal

    @property
    def loaded(self) -> np.ndarray:
        return self.vertical_force >= self.threshold_n

    def moment_about(self, point) -> np.ndarray:
        """(n, 3) moment of the ground reaction about `point` (m, lab frame), N·m."""
        return self.moment + np.cross(self.centre - np.asarray(point, dtype=float), self.force)

    @property
    def cop(self) -> np.ndarray:
        """(n, 3) centre of pressure on the working surface, m, lab frame; NaN when unloaded."""
        offset, _ = _cop_and_free_moment(self.force, self.moment, self.normal)
        cop = self.centre + offset
        cop[~self.loaded] = np.nan
        return cop

    @property
    def free_moment(self) -> np.ndarray:
        """(n, 3) free moment at the CoP (along the normal), N·m, lab frame; NaN when unloaded."""
        _, torque = _cop_and_free_moment(self.force, self.moment, self.normal)
        torque[~self.loaded] = np.nan
        return torque

    def loaded_intervals(self, min_duration_s: float = 0.0) -> list[tuple[float, float]]:
        """(start, end) times in s of the runs where the plate is loaded."""
        t = self.times
        return [(float(t[a]), float(t[b - 1])) for a, b in finite_runs(self.loaded)
                if t[b - 1] - t[a] >= min_duration_s]


def _cop_and_free_moment(force, moment, normal):
    """Offset r of the CoP from the point the moment is taken about, in the plane of `normal`,
    and the free moment there: r = n × M / (n·F), T = M - r × F (purely along n)."""
    fn = force @ normal
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.cross(normal, moment) / fn[:, None]
    return r, moment - np.cross(r, force)


def _param(params: dict, group: str, name: str, default=None):
    try:
        return params[group][name]["value"]
    except KeyError:
        return default


def _unit_factor(unit: str, table: dict[str, float]) -> float | None:
    return table.get(unit.strip().lower().replace(" ", "") if unit.strip() else "", None)


def read_force_plates(params: dict, analogs: np.ndarray, analog_rate: float, length_scale: float,
                      *, file=None, threshold_n: float = DEFAULT_THRESHOLD_N) -> list[ForcePlate]:
    """Force plates from the parameters and analog data of an ezc3d read.

    params: `c3d["parameters"]`; analogs: (channels, samples), already scaled by ezc3d;
    length_scale: metres per unit of POINT:UNITS (CORNERS and ORIGIN are in those units).
    Raises IngestError for plate descriptions that do not match the analog data.
    """
    used = _param(params, "FORCE_PLATFORM", "USED")
    n_plates = int(np.ravel(used)[0]) if used is not None and np.size(used) else 0
    if n_plates == 0:
        return []

    def bad(problem: str, hint: str | None = None) -> IngestError:
        return IngestError(problem, file=file, hint=hint or "fix the force plate setup in the "
                           "capture software and re-export the C3D")

    types = np.ravel(_param(params, "FORCE_PLATFORM", "TYPE", []))
    corners = np.asarray(_param(params, "FORCE_PLATFORM", "CORNERS"), dtype=float)
    origins = np.asarray(_param(params, "FORCE_PLATFORM", "ORIGIN"), dtype=float)
    channel = np.asarray(_param(params, "FORCE_PLATFORM", "CHANNEL"))
    cal = _param(params, "FORCE_PLATFORM", "CAL_MATRIX")
    units = [str(u) for u in np.ravel(_param(params, "ANALOG", "UNITS", []))]
    labels = [str(u) for u in np.ravel(_param(params, "ANALOG", "LABELS", []))]
    n_analog = analogs.shape[0]
    if len(types) < n_plates:
        raise bad(f"FORCE_PLATFORM:USED is {n_plates} but TYPE lists {len(types)} plates")
    if corners.size < 12 * n_plates or origins.size < 3 * n_plates:
        raise bad(f"FORCE_PLATFORM:CORNERS or ORIGIN describe fewer than the {n_plates} plates "
                  "in use")
    corners = corners.reshape(3, 4, -1, order="F") if corners.ndim != 3 else corners
    origins = origins.reshape(3, -1, order="F") if origins.ndim != 2 else origins
    if channel.ndim != 2 or channel.shape[1] < n_plates:
        raise bad(f"FORCE_PLATFORM:CHANNEL has shape {channel.shape}, expected (channels, "
                  f"{n_plates})")

    plates, taken = [], {}
    for i in range(n_plates):
        kind = int(types[i])
        if kind not in CHANNELS_PER_TYPE:
            raise bad(f"force plate {i + 1} is of type {kind}; only types 1-4 are supported",
                      "export the plate as type 2 or 4 (forces and moments) if the software can")
        need = CHANNELS_PER_TYPE[kind]
        if channel.shape[0] < need:
            raise bad(f"force plate {i + 1} (type {kind}) needs {need} analog channels but "
                      f"FORCE_PLATFORM:CHANNEL lists {channel.shape[0]}")
        chans = [int(c) - 1 for c in channel[:need, i]]
        for c in chans:
            if not 0 <= c < n_analog:
                raise bad(f"force plate {i + 1} reads analog channel {c + 1}, but the file has "
                          f"{n_analog} analog channels")
            if c in taken:
                raise bad(f"analog channel {c + 1} is claimed by force plates {taken[c]} and "
                          f"{i + 1}")
            taken[c] = i + 1
        raw = analogs[chans].T.astype(np.float64)  # (samples, need)
        raw = _to_si(raw, kind, chans, units, labels, length_scale, i + 1, bad)

        c = corners[:, :, i].T * length_scale  # (4, 3) m
        axis_x, axis_y = c[0] - c[1], c[0] - c[3]
        axis_z = np.cross(axis_x, axis_y)
        if np.linalg.norm(axis_z) < 1e-9:
            raise bad(f"force plate {i + 1} has degenerate CORNERS (they do not span a plane)")
        axis_y = np.cross(axis_z, axis_x)
        rot = np.column_stack([a / np.linalg.norm(a) for a in (axis_x, axis_y, axis_z)])
        origin = origins[:, i].astype(float) * length_scale
        if kind == 1:
            origin[:2] = 0.0
        if origin[2] > 0:  # BTK and ezc3d read a positive depth as a sign error
            origin = -origin if kind in (2, 4) else origin * np.array([1, 1, -1])

        f_plate, m_centre = _plate_frame_wrench(raw, kind, origin, cal, i, bad, length_scale)
        plates.append(ForcePlate(index=i + 1, type=kind, corners=c, rotation=rot, origin=origin,
                                 channels=tuple(chans), rate_hz=analog_rate,
                                 force=f_plate @ rot.T, moment=m_centre @ rot.T,
                                 threshold_n=threshold_n))
    return plates


def _to_si(raw, kind, chans, units, labels, length_scale, number, bad):
    """Scale each channel to N, N·m or m from its ANALOG:UNITS; check it is what the type says.

    Type 4 channels are uncalibrated signals: they are scaled after CAL_MATRIX, not here."""
    if kind == 4:
        return raw
    if kind == 3:
        roles = ["force"] * 8
    elif kind == 1:
        roles = ["force"] * 3 + ["length"] * 2 + ["moment"]
    else:
        roles = ["force"] * 3 + ["moment"] * 3
    out = raw.copy()
    for k, (c, role) in enumerate(zip(chans, roles, strict=True)):
        unit = units[c] if c < len(units) else ""
        name = labels[c] if c < len(labels) else f"#{c + 1}"
        if not unit.strip():  # no unit recorded: the C3D defaults (N, N·<point unit>)
            factor = {"force": 1.0, "moment": length_scale, "length": length_scale}[role]
        else:
            table = {"force": FORCE_UNITS, "moment": MOMENT_UNITS, "length": LENGTH_UNITS}[role]
            factor = _unit_factor(unit, table)
            if factor is None:
                raise bad(f"force plate {number} (type {kind}) expects a {role} on analog "
                          f"channel {c + 1} ({name}) but its unit is {unit!r}",
                          "check FORCE_PLATFORM:CHANNEL and ANALOG:UNITS; uncalibrated "
                          "channels (volts) need the plate's calibration applied on export")
        out[:, k] *= factor
    return out


def _plate_frame_wrench(raw, kind, origin, cal, i, bad, length_scale):
    """Plate outputs in its own frame: force (n, 3) N and moment about the surface centre
    (n, 3) N·m, from the channels of one plate type."""
    if kind == 1:  # Fx Fy Fz, CoP x y from the centre, free moment Tz
        f = raw[:, :3]
        r = np.column_stack([raw[:, 3], raw[:, 4], np.zeros(len(raw))])
        torque = np.column_stack([np.zeros(len(raw)), np.zeros(len(raw)), raw[:, 5]])
        return f, torque + np.cross(r, f)
    if kind == 3:  # Kistler: 8 channels, sensor offsets a, b in ORIGIN x, y
        ch = raw
        a, b = origin[0], origin[1]
        f = np.column_stack([ch[:, 0] + ch[:, 1], ch[:, 2] + ch[:, 3],
                             ch[:, 4] + ch[:, 5] + ch[:, 6] + ch[:, 7]])
        m = np.column_stack([b * (ch[:, 4] + ch[:, 5] - ch[:, 6] - ch[:, 7]),
                             a * (ch[:, 5] + ch[:, 6] - ch[:, 4] - ch[:, 7]),
                             b * (ch[:, 1] - ch[:, 0]) + a * (ch[:, 2] - ch[:, 3])])
        return f, m + np.cross(f, np.array([0.0, 0.0, origin[2]]))
    data = raw
    if kind == 4:
        cal = np.asarray(cal, dtype=float) if cal is not None else np.empty(0)
        if cal.ndim != 3 or cal.shape[0] < 6 or cal.shape[1] < 6 or cal.shape[2] <= i:
            raise bad(f"force plate {i + 1} is of type 4 but FORCE_PLATFORM:CAL_MATRIX has "
                      f"shape {cal.shape}, expected (6, 6, plates)")
        # Calibrated output is N and N·<point unit> (the C3D convention for type 4).
        data = raw @ cal[:6, :6, i].T * np.array([1, 1, 1] + [length_scale] * 3)
    # Moment measured about the sensor origin, moved to the surface centre.
    return data[:, :3], data[:, 3:6] + np.cross(data[:, :3], origin)
