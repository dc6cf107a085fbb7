"""Forward kinematics for the synthetic cohort: planted feet that neither slide nor sink, markers.

`plant_feet` turns a `pipeline.motions.Motion` (nominal angles and a foot-contact plan) into
coordinates whose planted contact spheres stay where they touched down, resting on the floor
(sphere bottom at y = 0). Each frame is a small least-squares problem solved by Gauss-Newton over
OpenSim's own forward kinematics (one State, finite differences): the unknowns are the pelvis
translation, the joint angles of each planted leg (and, where the plan asks for balance, pelvis
tilt and lumbar extension); the residuals are the contact constraints in millimetres, plus small
penalties that keep the angles near the normative curves and changing smoothly. Swing legs keep
the nominal curves plus a correction that blends smoothly (cubic Hermite) from the value at
toe-off to the value at the next touch-down, so nothing jumps.

Per foot and phase (pipeline.motions): HEEL fixes the rearmost calcaneus sphere and the foot's
orientation (yaw as it landed, no roll, pitch easing to flat); FLAT fixes every sphere and the toe
joint; TOE fixes the toes and raises the heel toward the pitch the nominal angles give (eased
in, within the toe joint's range). `marker_positions` and `sphere_bottoms` are the plain forward
kinematics of the result (one State, setValue + realizePosition per frame). See docs/cohort.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import opensim
import pandas as pd

from pipeline.errors import ModelError
from pipeline.motions import FLAT, HEEL, SIDES, SWING, TOE, Motion, hermite_fill, phase_changes
from pipeline.motions import LEG_COORDINATES as LEG
from pipeline.motions import PELVIS_TRANSLATIONS as PELVIS_T
from pipeline.motions import smoothstep as _smoothstep

# Penalty weights per degree of deviation from the nominal curve, against constraints in mm:
# joints that absorb foot placement in life (ankle, subtalar, toes, hip rotation) are cheap.
_NEAR_NOMINAL = {"hip_flexion": 0.03, "hip_adduction": 0.03, "knee_angle": 0.03,
                 "hip_rotation": 0.01, "ankle_angle": 0.01, "subtalar_angle": 0.01,
                 "mtp_angle": 0.01, "pelvis_tilt": 0.03, "lumbar_extension": 0.03}
_SMOOTH = 0.1              # per degree of change of the correction from one frame to the next
_BALANCE = 0.3             # per mm of centre of mass away from the middle of the planted feet
_PELVIS_SMOOTH = 0.003     # per mm of pelvis translation off its constant-velocity prediction
_ORIENTATION_MM = 100.0    # lever (mm) that turns an orientation error (rad) into millimetres
_GUIDE = 0.3              # per mm of pelvis height off the guide of the second pass
_RANGE = 3.0               # per degree beyond a coordinate's range
_STEP = 1e-6               # finite-difference step (rad or m)


@dataclass
class Foot:
    """Contact geometry of one foot: sphere centres in their body frames, radii (m)."""

    side: str
    calcn: object
    toes: object
    calcn_spheres: np.ndarray      # (n, 3)
    toes_spheres: np.ndarray       # (m, 3)
    radius: float
    heel: int                      # index of the rearmost calcaneus sphere


def _spheres(model) -> dict:
    """ContactSphere centres per body name, in the body frame, and their radii."""
    found: dict = {}
    geometry = model.getContactGeometrySet()
    for i in range(geometry.getSize()):
        sphere = opensim.ContactSphere.safeDownCast(geometry.get(i))
        if sphere is None:
            continue
        frame = sphere.getFrame()
        offset = frame.findTransformInBaseFrame()
        centre = offset.shiftFrameStationToBase(sphere.get_location()).to_numpy()
        found.setdefault(frame.findBaseFrame().getName(), []).append((centre, sphere.getRadius()))
    return found


def feet(model) -> dict:
    """Foot contact geometry per side, from the model's ContactSpheres on calcn_* and toes_*."""
    spheres = _spheres(model)
    out = {}
    for side in SIDES:
        calcn, toes = spheres.get(f"calcn_{side}", []), spheres.get(f"toes_{side}", [])
        if len(calcn) < 2 or not toes:
            raise ModelError(f"model has no contact spheres on calcn_{side} and toes_{side}",
                             hint="build it with osim.builtin_model.build_model")
        centres = np.array([c for c, _ in calcn])
        bodies = model.getBodySet()
        out[side] = Foot(side, bodies.get(f"calcn_{side}"), bodies.get(f"toes_{side}"), centres,
                         np.array([c for c, _ in toes]), float(calcn[0][1]),
                         int(np.argmin(centres[:, 0])))
    return out


class Pose:
    """One OpenSim State for fast repeated forward kinematics (set values, realize, read)."""

    def __init__(self, model):
        self.model = model
        self.state = model.initSystem()
        coords = model.getCoordinateSet()
        self.coordinate = {coords.get(i).getName(): coords.get(i) for i in range(coords.getSize())}
        for coord in self.coordinate.values():
            # Clamping would flatten finite differences at a range limit; ranges are penalised.
            coord.setClamped(self.state, False)
        self._vec3: dict = {}

    def set(self, values: dict) -> None:
        for name, value in values.items():
            self.coordinate[name].setValue(self.state, float(value), False)
        self.model.realizePosition(self.state)

    def stations(self, body, points: np.ndarray) -> np.ndarray:
        """Ground positions (n, 3) of body-frame points (n, 3), metres."""
        key = (body.getName(), points.tobytes())
        if key not in self._vec3:
            self._vec3[key] = [opensim.Vec3(*p) for p in points]
        return np.array([body.findStationLocationInGround(self.state, v).to_numpy()
                         for v in self._vec3[key]])

    def centre_of_mass(self) -> np.ndarray:
        return self.model.calcMassCenterPosition(self.state).to_numpy()


def _base(name: str) -> str:
    """Coordinate name without its side: `hip_flexion_r` -> `hip_flexion`."""
    return name[:-2] if name.endswith(("_r", "_l")) else name


def _foot_axes(pose: Pose, foot: Foot) -> np.ndarray:
    """Forward (heel to fore-foot) and lateral axes of the calcaneus in ground, (2, 3)."""
    rear = foot.calcn_spheres[foot.heel]
    front = foot.calcn_spheres[np.argsort(foot.calcn_spheres[:, 0])[-2:]].mean(axis=0)
    p = pose.stations(foot.calcn, np.array([rear, front, rear + [0, 0, 0.1]]))
    return np.array([p[1] - p[0], p[2] - p[0]])


def _angles(axes: np.ndarray) -> np.ndarray:
    """(pitch, roll, yaw) of the foot axes, rad: toe-up pitch +, yaw about the vertical."""
    fwd, lat = axes
    pitch = np.arctan2(fwd[1], np.hypot(fwd[0], fwd[2]))
    roll = np.arctan2(lat[1], np.hypot(lat[0], lat[2]))
    return np.array([pitch, roll, np.arctan2(-fwd[2], fwd[0])])


class _Planter:
    """Frame-by-frame solver state: anchors of planted points, corrections so far."""

    def __init__(self, model, motion: Motion, height_guide: np.ndarray | None = None):
        self.guide = height_guide
        self.landings: list[tuple[int, float]] = []
        self.pose = Pose(model)
        self.feet = feet(model)
        self.motion = motion
        self.names = [c for c in motion.coords.columns if c in self.pose.coordinate]
        self.col = {name: i for i, name in enumerate(self.names)}
        self.nominal = motion.coords[self.names].to_numpy()
        self.pose.set({c: 0.0 for c in self.pose.coordinate})
        self.neutral = {s: _angles(_foot_axes(self.pose, f)) for s, f in self.feet.items()}
        self.anchor: dict = {s: {} for s in SIDES}
        self.delta = np.zeros_like(self.nominal)
        self.translation = np.zeros((len(self.nominal), 3))
        self.targets = {s: self._pitch_targets(s) for s in SIDES}
        self._jacobians: dict = {}

    def _set_frame(self, frame: int, names: list[str], x: np.ndarray) -> None:
        values = dict(zip(self.names, self.nominal[frame], strict=True))
        values.update(zip(names, x, strict=True))
        self.pose.set(values)

    def _pitch_of_nominal(self, side: str, frame: int) -> float:
        self._set_frame(frame, [], np.zeros(0))
        return _angles(_foot_axes(self.pose, self.feet[side]))[0] - self.neutral[side][0]

    def _pitch_targets(self, side: str) -> np.ndarray:
        """Calcaneus pitch per frame: the pitch the nominal angles give, toe-up only while on
        the heel (eased down to flat by foot-flat), heel-up only on the toes (eased in)."""
        contact, n = self.motion.contact[side], len(self.nominal)
        target = np.zeros(n)
        for phase, start, end in phase_changes(contact):
            if phase not in (HEEL, TOE):
                continue
            pitch = np.array([self._pitch_of_nominal(side, k) for k in range(start, end)])
            s = np.arange(end - start) / max(end - start, 1)
            if phase == HEEL:
                target[start:end] = np.maximum(pitch, 0.0) * (1 - _smoothstep(s))
            else:
                # The heel rises slowly at first (s^2); the toes stay flat, so the heel can rise
                # no further than the toe joint's range allows.
                rising = np.minimum(pitch, 0.0) * s**2
                limit = self.pose.coordinate.get(f"mtp_angle_{side}")
                floor = -(limit.getRangeMax() - np.deg2rad(3)) if limit else None
                target[start:end] = floor * np.tanh(rising / floor) if floor else rising
        return target

    def _unknowns(self, frame: int, planted: list[str]) -> list[str]:
        names = list(PELVIS_T)
        for side in planted:
            names += [f"{c}_{side}" for c in LEG]
        if self.motion.balance[frame] > 0:
            names += ["pelvis_tilt", "lumbar_extension"]
        return [n for n in names if n in self.pose.coordinate]

    def _points(self, side: str, phase: int) -> dict:
        """Ground positions of the points a phase plants: name -> (3,) m."""
        foot, pose = self.feet[side], self.pose
        out = {}
        if phase == HEEL:
            out["heel"] = pose.stations(foot.calcn, foot.calcn_spheres[[foot.heel]])[0]
        if phase == FLAT:
            for i, p in enumerate(pose.stations(foot.calcn, foot.calcn_spheres)):
                out["heel" if i == foot.heel else f"calcn{i}"] = p
        if phase in (FLAT, TOE):
            for i, p in enumerate(pose.stations(foot.toes, foot.toes_spheres)):
                out[f"toes{i}"] = p
            out["mtp"] = pose.stations(foot.toes, np.zeros((1, 3)))[0]
        return out

    def _constraints(self, frame: int, planted: dict) -> list:
        """Contact (and balance) residuals of the current pose, millimetres."""
        res = []
        for side, phase in planted.items():
            anchors = self.anchor[side]
            for key, p in self._points(side, phase).items():
                if key in anchors:
                    res.extend(1e3 * (p - anchors[key]))
            if phase == TOE or (phase == HEEL and "orientation" in anchors):
                pitch, roll, yaw = _angles(_foot_axes(self.pose, self.feet[side]))
                pitch0, roll0, _ = self.neutral[side]
                err = [pitch - pitch0 - self.targets[side][frame]]
                if phase == HEEL:
                    err += [roll - roll0, np.angle(np.exp(1j * (yaw - anchors["orientation"])))]
                res.extend(_ORIENTATION_MM * np.array(err))
        weight = self.motion.balance[frame]
        if weight > 0 and planted:
            support = np.mean([a for s in planted for k, a in self.anchor[s].items()
                               if k != "orientation"], axis=0)
            com = self.pose.centre_of_mass()
            res.extend(_BALANCE * weight * 1e3 * (com - support)[[0, 2]])
        return res

    def _prepare(self, frame: int, names: list[str], fresh: set) -> None:
        """Constants of one frame's penalties. Legs in `fresh` have just touched down: their
        correction is blended over the swing afterwards, so they pay no smoothness penalty."""
        idx = [i for i, n in enumerate(names) if _base(n) in _NEAR_NOMINAL]
        cols = [self.col[names[i]] for i in idx]
        prev = max(frame - 1, 0)
        self._pen = {
            "idx": idx, "cols": cols, "near": np.array([_NEAR_NOMINAL[_base(names[i])]
                                                        for i in idx]),
            "smooth": np.array([0.0 if names[i][-1] in fresh and names[i][-2] == "_"
                                else _SMOOTH for i in idx]),
            "prev": np.rad2deg(self.delta[prev, cols]) if frame else np.zeros(len(idx)),
            # A touch-down is absorbed by the landing leg, not by a jolt of the pelvis.
            "predicted": 2 * self.translation[prev] - self.translation[max(frame - 2, 0)],
            "range": np.array([(-np.inf, np.inf) if n in PELVIS_T else
                               (self.pose.coordinate[n].getRangeMin(),
                                self.pose.coordinate[n].getRangeMax()) for n in names]).T}

    def _penalties(self, frame: int, x: np.ndarray) -> np.ndarray:
        """Near the nominal curves (deg), smooth corrections (deg/frame), no pelvis jolt (mm),
        within the coordinate ranges (deg) and, in a second pass, on the height guide (mm)."""
        pen = self._pen
        d = np.rad2deg(x[pen["idx"]] - self.nominal[frame, pen["cols"]])
        jolt = 1e3 * (x[:3] - pen["predicted"]) if frame > 0 else np.zeros(3)
        low, high = pen["range"]
        beyond = np.rad2deg(np.maximum(low - x, 0) + np.maximum(x - high, 0))
        guide = [_GUIDE * 1e3 * (x[1] - self.guide[frame])] if self.guide is not None else []
        return np.concatenate([pen["near"] * d, pen["smooth"] * (d - pen["prev"]),
                               _PELVIS_SMOOTH * jolt, _RANGE * beyond, guide])

    def _residuals(self, frame, planted, x, names) -> np.ndarray:
        self._set_frame(frame, names, x)
        return np.concatenate([self._constraints(frame, planted), self._penalties(frame, x)])

    def _jacobian(self, frame, planted, x, names, r) -> np.ndarray:
        """Forward differences of the residuals, one coordinate at a time."""
        self._set_frame(frame, names, x)        # the pose may hold a rejected trial point
        jac = np.empty((len(r), len(x)))
        n_con = len(r) - len(self._penalties(frame, x))
        for j, name in enumerate(names):
            coord = self.pose.coordinate[name]
            coord.setValue(self.pose.state, float(x[j] + _STEP), False)
            self.pose.model.realizePosition(self.pose.state)
            xj = x.copy()
            xj[j] += _STEP
            jac[:n_con, j] = (np.array(self._constraints(frame, planted)) - r[:n_con]) / _STEP
            jac[n_con:, j] = (self._penalties(frame, xj) - r[n_con:]) / _STEP
            coord.setValue(self.pose.state, float(x[j]), False)
        return jac

    def _solve(self, frame: int, planted: dict, x: np.ndarray, names: list[str],
               fresh: set = frozenset()) -> np.ndarray:
        """Gauss-Newton with a reused (chord) Jacobian, refreshed when progress stalls."""
        self._prepare(frame, names, fresh)
        r = self._residuals(frame, planted, x, names)
        # Consecutive frames differ little: start from the last Jacobian of the same problem.
        key = (tuple(names), tuple(sorted(planted.items())), len(r), tuple(sorted(fresh)))
        cached_frame, jac = self._jacobians.get(key, (None, None))
        jac = jac if cached_frame in (frame, frame - 1) else None
        new_jac, last, damping = False, np.inf, 1.0
        for _ in range(30):
            if jac is None:
                jac, new_jac = self._jacobian(frame, planted, x, names, r), True
            step = np.linalg.solve(jac.T @ jac + 1e-9 * np.eye(len(x)), -jac.T @ r) * damping
            size = np.max(np.abs(step))
            step *= min(1.0, 0.2 / max(size, 1e-12))
            r_new = self._residuals(frame, planted, x + step, names)
            if r_new @ r_new <= r @ r:
                x, r, damping = x + step, r_new, 1.0
                if size < 1e-6 and new_jac:
                    break
                if size < 1e-6 or size > 0.3 * last:
                    jac = None            # confirm, or speed up, with a fresh Jacobian
                last, new_jac = size, False
            elif new_jac:
                damping *= 0.5
            else:
                jac = None
        self._jacobians[key] = (frame, jac)
        self._set_frame(frame, names, x)
        return x

    def _start(self, frame: int, names: list[str]) -> np.ndarray:
        """Initial guess: the nominal angles plus the previous frame's corrections."""
        prev, cols = max(frame - 1, 0), [self.col[n] for n in names[3:]]
        return np.concatenate([self.translation[prev],
                               self.nominal[frame, cols] + self.delta[prev, cols]])

    def frame(self, k: int) -> None:
        contact = {s: int(self.motion.contact[s][k]) for s in SIDES}
        planted = {s: p for s, p in contact.items() if p != SWING}
        new = {s: p for s, p in planted.items()
               if k == 0 or self.motion.contact[s][k - 1] != p}
        fresh = {s for s in new if k > 0 and self.motion.contact[s][k - 1] == SWING}
        names = self._unknowns(k, list(planted))
        x = self._start(k, names)
        if new:
            # Solve with the anchors already held, then plant the new points where they are.
            kept = {s: p for s, p in planted.items() if s not in new}
            kept.update({s: int(self.motion.contact[s][k - 1]) for s in new
                         if self.anchor[s] and k > 0})
            if any(self.anchor[s] for s in kept):
                x = self._solve(k, kept, x, names, fresh)
            self._set_frame(k, names, x)
            self.frame_index = k
            for side, phase in new.items():
                self.anchor_was_held = bool(self.anchor[side])
                self._plant(side, phase)
        x = self._solve(k, planted, x, names, fresh)
        for name, value in zip(names, x, strict=True):
            if name in PELVIS_T:
                self.translation[k][PELVIS_T.index(name)] = value
            else:
                self.delta[k, self.col[name]] = value - self.nominal[k, self.col[name]]
        if not planted and k > 0:          # no foot down (not in these activities): hold
            self.translation[k] = self.translation[k - 1]
        for side in SIDES:
            if side not in planted:
                self.anchor[side] = {}

    def _plant(self, side: str, phase: int) -> None:
        """Anchor the points of a new phase where they are now, resting on the floor."""
        foot, anchors = self.feet[side], self.anchor[side]
        points = self._points(side, phase)
        sole = [k for k in points if k != "mtp" and k not in anchors]
        drop = np.mean([points[k][1] - foot.radius for k in sole]) if sole else 0.0
        for key, p in points.items():
            if key not in anchors:
                anchors[key] = p - [0.0, drop, 0.0] if key == "mtp" else np.array(
                    [p[0], foot.radius, p[2]])
        if not self.anchor_was_held and self.frame_index > 0:      # a touch-down from swing
            self.landings.append((self.frame_index, drop))
        if phase == HEEL:
            anchors["orientation"] = _angles(_foot_axes(self.pose, foot))[2]
        for key in list(anchors):          # drop points the new phase no longer plants
            if key != "orientation" and key not in points:
                del anchors[key]

    def blend_swing(self) -> None:
        """Swing-leg corrections: cubic Hermite from toe-off to the next touch-down."""
        for side in SIDES:
            cols = [self.col[f"{c}_{side}"] for c in LEG if f"{c}_{side}" in self.col]
            self.delta[:, cols] = hermite_fill(self.delta[:, cols],
                                               self.motion.contact[side] == SWING)


def plant_feet(model, motion: Motion) -> pd.DataFrame:
    """Coordinates of `motion` with the planted feet fixed on the floor (radians, metres).

    Returns a DataFrame indexed by time (s) with every coordinate of the model that the motion
    names, the lead-in and lead-out frames (`motion.trim`) removed and time starting at 0; its
    `attrs["contact"]` holds the contact plan of those frames per side.

    Where a swing heel arrives above (or below) the floor at its planned touch-down, a second
    pass guides the pelvis down (up) by that much around the touch-down, so the stance leg bends
    a little more and the heel lands on the floor instead of being pulled there in one frame.
    """
    planter = _solve_all(model, motion, None)
    misses = [(k, d) for k, d in planter.landings if abs(d) > 0.002]
    if misses:
        guide = planter.translation[:, 1].copy()
        frames = np.arange(len(guide))
        half = max(int(0.12 * motion.meta.get("stride_frames", 100)), 3)
        for k, drop in planter.landings:
            s = np.clip(1 - np.abs(frames - k) / half, 0, 1)
            guide -= drop * _smoothstep(s)
        planter = _solve_all(model, motion, guide)
    coords = pd.DataFrame(planter.nominal + planter.delta, index=motion.coords.index,
                          columns=planter.names)
    coords[list(PELVIS_T)] = planter.translation
    before, after = motion.trim
    coords = coords.iloc[before:len(coords) - after].copy()
    coords.index = pd.Index(np.round(coords.index - coords.index[0], 9), name="time")
    coords.attrs["contact"] = {side: plan[before:len(plan) - after]
                               for side, plan in motion.contact.items()}
    return coords


def _solve_all(model, motion: Motion, guide) -> _Planter:
    planter = _Planter(model, motion, guide)
    for k in range(len(planter.nominal)):
        planter.frame(k)
    planter.blend_swing()
    return planter


def forward_kinematics(model, coords: pd.DataFrame, bodies_points: dict) -> dict:
    """Ground positions over time of body-frame points: {key: (body, (n, 3))} -> (frames, n, 3)."""
    pose = Pose(model)
    out = {key: np.empty((len(coords), len(pts), 3)) for key, (_, pts) in bodies_points.items()}
    names = [c for c in coords.columns if c in pose.coordinate]
    values = coords[names].to_numpy()
    for k in range(len(coords)):
        pose.set(dict(zip(names, values[k], strict=True)))
        for key, (body, pts) in bodies_points.items():
            out[key][k] = pose.stations(body, pts)
    return out


def marker_positions(model, coords: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """Marker names and their ground positions (frames, markers, 3), metres, OpenSim frame."""
    pose = Pose(model)
    markers = model.getMarkerSet()
    marker_list = [markers.get(i) for i in range(markers.getSize())]
    names = [c for c in coords.columns if c in pose.coordinate]
    values = coords[names].to_numpy()
    out = np.empty((len(coords), len(marker_list), 3))
    for k in range(len(coords)):
        pose.set(dict(zip(names, values[k], strict=True)))
        out[k] = [m.getLocationInGround(pose.state).to_numpy() for m in marker_list]
    return [m.getName() for m in marker_list], out


def sphere_bottoms(model, coords: pd.DataFrame) -> dict:
    """Per side, the lowest points of the contact spheres over time, (frames, spheres, 3), m.

    Calcaneus spheres first, then toes spheres; the lowest point is the centre minus the radius
    in y, so y < 0 means the sphere is in the floor.
    """
    geometry = feet(model)
    request = {}
    for side, foot in geometry.items():
        request[f"calcn_{side}"] = (foot.calcn, foot.calcn_spheres)
        request[f"toes_{side}"] = (foot.toes, foot.toes_spheres)
    pos = forward_kinematics(model, coords, request)
    out = {}
    for side, foot in geometry.items():
        both = np.concatenate([pos[f"calcn_{side}"], pos[f"toes_{side}"]], axis=1)
        both[..., 1] -= foot.radius
        out[side] = both
    return out
