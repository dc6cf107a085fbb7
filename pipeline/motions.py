"""Activity generators for the synthetic cohort: nominal joint angles plus a foot-contact plan.

Each generator returns a `Motion`: coordinate trajectories with OpenSim's coordinate names
(radians; the pelvis translations are left at zero because `osim.synthetic_markers` solves them
so the planted feet neither slide nor sink) and, per foot, a contact phase per frame:

    SWING  foot free            HEEL  heel spheres planted, foot rolls onto the sole
    FLAT   whole sole planted   TOE   toes planted, heel rising

Walking curves are Fourier series fitted to key values of the normative sagittal angles of
Winter (2009, *Biomechanics and Motor Control of Human Movement*, 4th ed., ch. 4 and appendix
A) and Perry & Burnfield (2010, *Gait Analysis*, 2nd ed.); the frontal and transverse curves are
low-order sinusoids with the amplitudes those books give (pelvis list about 4 deg, rotation about
4 deg each way). Cadence follows a power law of the kind Grieve & Gear (1966) fitted: stride
length ~ v^0.42, so stride frequency ~ v^0.58, scaled for height by dynamic similarity. The other
activities are smooth keyframe motions (monotone cubic through key poses). Plain NumPy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.interpolate import CubicSpline, PchipInterpolator

SWING, HEEL, FLAT, TOE = 0, 1, 2, 3
SIDES = ("r", "l")
PELVIS_TRANSLATIONS = ("pelvis_tx", "pelvis_ty", "pelvis_tz")
LEG_COORDINATES = ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle", "ankle_angle",
                   "subtalar_angle", "mtp_angle")
ARM_COORDINATES = ("arm_flex", "arm_add", "arm_rot", "elbow_flex", "pro_sup", "wrist_flex",
                   "wrist_dev")
COORDINATE_NAMES = (("pelvis_tilt", "pelvis_list", "pelvis_rotation") + PELVIS_TRANSLATIONS
                    + tuple(f"{c}_{s}" for s in SIDES for c in LEG_COORDINATES)
                    + ("lumbar_extension", "lumbar_bending", "lumbar_rotation")
                    + tuple(f"{c}_{s}" for s in SIDES for c in ARM_COORDINATES))

# Arms hanging relaxed: slightly abducted, elbows a little bent, forearm in mid-pronation (deg).
ARM_REST_DEG = {"arm_flex": 0.0, "arm_add": -8.0, "arm_rot": 0.0, "elbow_flex": 15.0,
                "pro_sup": 80.0, "wrist_flex": 0.0, "wrist_dev": 0.0}

# Normative sagittal angles over one stride from right heel strike (percent, degrees): key values
# of Winter (2009) / Perry & Burnfield (2010) at natural cadence (about 1.35 m/s). Hip flexion +,
# knee flexion +, ankle dorsiflexion +.
_GAIT_KEYS_DEG = {
    "hip_flexion": [(0, 30), (10, 28), (20, 20), (30, 10), (40, 1), (50, -8), (55, -10),
                    (60, -6), (65, 3), (70, 13), (75, 22), (80, 29), (85, 33), (90, 33),
                    (95, 31)],
    "knee_angle": [(0, 5), (5, 12), (12, 18), (20, 14), (30, 7), (40, 5), (45, 7), (50, 12),
                   (55, 22), (60, 36), (65, 50), (70, 59), (73, 61), (80, 54), (85, 40),
                   (90, 22), (95, 8)],
    "ankle_angle": [(0, 0), (5, -5), (8, -6), (12, -3), (20, 3), (30, 7), (40, 10), (45, 10),
                    (50, 6), (55, -3), (60, -14), (63, -17), (67, -14), (70, -8), (75, -3),
                    (80, 0), (90, 1)],
}
_HARMONICS = 6
NATURAL_SPEED = 1.35      # m/s, the speed of the key values above
HIP_GAIN = 1.4            # hip excursion that gives the cadence law's stride on the built-in model
# Contact plan within the stride (fractions from own heel strike): heel rocker until foot flat,
# heel rise, toe-off (Perry & Burnfield's phases: loading response to 12%, heel rise ~31-35%,
# toe-off ~60-62%).
FOOT_FLAT, HEEL_OFF, TOE_OFF = 0.08, 0.33, 0.61


@dataclass
class Motion:
    """Nominal coordinates of one trial and its foot-contact plan.

    coords: index `time` (s), one column per name of COORDINATE_NAMES, radians and metres.
    contact: side ("r"/"l") -> int array (frames,) of SWING/HEEL/FLAT/TOE.
    balance: (frames,) weight in [0, 1] of keeping the whole-body centre of mass over the feet.
    trim: frames (before, after) solved for a steady start/end and then dropped.
    """

    activity: str
    coords: pd.DataFrame
    contact: dict
    balance: np.ndarray
    trim: tuple[int, int] = (0, 0)
    meta: dict = field(default_factory=dict)


def fourier_fit(keys_deg, harmonics: int = _HARMONICS) -> np.ndarray:
    """Fourier coefficients (radians) of a periodic curve through (percent, degrees) key values.

    Returns [a0, a1, b1, ..., aH, bH] with curve(phi) = a0 + sum a_k cos(2 pi k phi) +
    b_k sin(2 pi k phi), phi in [0, 1).
    """
    pct, deg = np.array(keys_deg, dtype=float).T
    x = np.append(pct / 100.0, 1.0)
    y = np.deg2rad(np.append(deg, deg[0]))
    spline = CubicSpline(x, y, bc_type="periodic")
    phi = np.arange(256) / 256.0
    spectrum = np.fft.rfft(spline(phi)) / 256.0
    coeffs = [spectrum[0].real]
    for k in range(1, harmonics + 1):
        coeffs += [2.0 * spectrum[k].real, -2.0 * spectrum[k].imag]
    return np.array(coeffs)


def fourier_eval(coeffs: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Evaluate `fourier_fit` coefficients at phases `phi` (strides)."""
    out = np.full(np.shape(phi), coeffs[0], dtype=float)
    for k in range(1, (len(coeffs) - 1) // 2 + 1):
        out += coeffs[2 * k - 1] * np.cos(2 * np.pi * k * phi)
        out += coeffs[2 * k] * np.sin(2 * np.pi * k * phi)
    return out


GAIT_FOURIER = {name: fourier_fit(keys) for name, keys in _GAIT_KEYS_DEG.items()}


def stride_frequency(speed_m_s: float, height_m: float) -> float:
    """Strides per second for walking speed (m/s) and body height (m).

    1.0 m/s -> 0.85 Hz, 1.4 m/s -> 0.98 Hz at 1.75 m (stride 1.18 m and 1.43 m), a power law of the
    kind Grieve & Gear (1966) fitted; taller people take longer, slower strides (Froude scaling).
    """
    return 0.85 * speed_m_s ** 0.58 * np.sqrt(1.75 / height_m)


def _blank(time: np.ndarray) -> pd.DataFrame:
    data = np.zeros((len(time), len(COORDINATE_NAMES)))
    df = pd.DataFrame(data, index=pd.Index(time, name="time"), columns=list(COORDINATE_NAMES))
    for side in SIDES:
        for name, deg in ARM_REST_DEG.items():
            df[f"{name}_{side}"] = np.deg2rad(deg)
    return df


def _time(duration_s: float, rate_hz: float) -> np.ndarray:
    n = int(round(duration_s * rate_hz)) + 1
    return np.arange(n) / rate_hz


def walking(speed_m_s: float, height_m: float, *, strides: float = 2.0, rate_hz: float = 100.0,
            lead_strides: float = 0.75, style: dict | None = None) -> Motion:
    """Level walking at `speed_m_s`, starting at right heel strike, `strides` strides long.

    Hip and knee excursions grow with speed (about v^0.5 around the natural speed), so the step
    length that the solved kinematics produce follows the cadence law; the solved speed is
    measured afterwards. style: optional per-subject offsets {coordinate: radians} and
    "amplitude" (scale of the sagittal excursions, ~1).
    """
    style = dict(style or {})
    freq = stride_frequency(speed_m_s, height_m)
    period = 1.0 / freq
    lead = int(round(lead_strides * period * rate_hz))
    t = _time((strides + 2 * lead_strides) * period, rate_hz)
    phi_r = t * freq - lead_strides                 # right heel strike at phi = 0 (trimmed start)
    df = _blank(t - lead / rate_hz)
    gain = HIP_GAIN * (speed_m_s / NATURAL_SPEED) ** 0.5 * style.pop("amplitude", 1.0)
    deg = np.deg2rad
    for side, phi in (("r", phi_r), ("l", phi_r + 0.5)):
        hip = fourier_eval(GAIT_FOURIER["hip_flexion"], phi)
        df[f"hip_flexion_{side}"] = GAIT_FOURIER["hip_flexion"][0] + gain * (
            hip - GAIT_FOURIER["hip_flexion"][0])
        df[f"knee_angle_{side}"] = fourier_eval(GAIT_FOURIER["knee_angle"], phi) * (
            gain / HIP_GAIN) ** 0.5
        df[f"ankle_angle_{side}"] = fourier_eval(GAIT_FOURIER["ankle_angle"], phi)
        w = 2 * np.pi * phi
        df[f"hip_adduction_{side}"] = deg(1.0) + deg(4.0) * np.sin(w + 0.3)
        df[f"hip_rotation_{side}"] = deg(2.0) * np.cos(w)
        # Arms swing opposite to the leg of the same side; elbows bend more in the forward swing.
        df[f"arm_flex_{side}"] = deg(3.0) - deg(14.0) * gain / HIP_GAIN * np.cos(w)
        df[f"elbow_flex_{side}"] = deg(20.0) - deg(8.0) * gain / HIP_GAIN * np.cos(w)
    w = 2 * np.pi * phi_r
    # The lab's hip angles are measured from a pelvis tilted ~10 deg forward (Perry's thigh
    # angles: +20 deg at heel strike, -20 deg at 50%); the lumbar joint keeps the trunk upright.
    df["pelvis_tilt"] = deg(-10.0) - deg(1.0) * np.cos(2 * w)
    df["pelvis_list"] = -deg(3.5) * gain / HIP_GAIN * np.sin(w + 0.3)   # swing side drops (right down = +)
    df["pelvis_rotation"] = deg(4.0) * gain / HIP_GAIN * np.cos(w)  # leading side forward at heel strike
    df["lumbar_extension"] = deg(7.0) + deg(1.0) * np.cos(2 * w)
    df["lumbar_bending"] = deg(2.5) * np.sin(w + 0.3)       # trunk counters the pelvis list
    df["lumbar_rotation"] = -deg(3.0) * gain / HIP_GAIN * np.cos(w)
    for name, value in style.items():
        df[name] += value
    contact = {side: _gait_contact(phi) for side, phi in (("r", phi_r), ("l", phi_r + 0.5))}
    trim = (lead, lead)
    return Motion("walk", df, contact, np.zeros(len(t)), trim,
                  {"speed_nominal_m_s": speed_m_s, "stride_frequency_hz": freq,
                   "stride_frames": period * rate_hz})


def _gait_contact(phi: np.ndarray) -> np.ndarray:
    p = np.mod(phi, 1.0)
    return np.select([p < FOOT_FLAT, p < HEEL_OFF, p < TOE_OFF], [HEEL, FLAT, TOE], SWING)


def keyframes(t: np.ndarray, keys: list[tuple[float, float]]) -> np.ndarray:
    """Monotone cubic (PCHIP) through (time s, value) keys, flat beyond the ends."""
    kt, kv = np.array(keys, dtype=float).T
    return PchipInterpolator(kt, kv, extrapolate=False)(np.clip(t, kt[0], kt[-1]))


def _planted(n: int) -> dict:
    return {side: np.full(n, FLAT) for side in SIDES}


def _stance_pose(df: pd.DataFrame) -> None:
    """Feet about hip width apart, toes turned out a little (applied to both sides)."""
    for side in SIDES:
        df[f"hip_adduction_{side}"] += np.deg2rad(-3.0)
        df[f"hip_rotation_{side}"] += np.deg2rad(-5.0)


def static(*, duration_s: float = 1.5, rate_hz: float = 100.0, rng=None) -> Motion:
    """Quiet standing with a little postural sway (about 0.5 deg at the ankles, 0.2-0.4 Hz)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    t = _time(duration_s, rate_hz)
    df = _blank(t)
    _stance_pose(df)
    f1, f2 = rng.uniform(0.2, 0.4, 2)
    p1, p2 = rng.uniform(0, 2 * np.pi, 2)
    sway = np.deg2rad(0.5) * np.sin(2 * np.pi * f1 * t + p1)
    for side in SIDES:
        df[f"ankle_angle_{side}"] += sway
        df[f"hip_flexion_{side}"] += -0.5 * sway
    df["lumbar_bending"] = np.deg2rad(0.3) * np.sin(2 * np.pi * f2 * t + p2)
    for side in SIDES:                      # arms held away from the trunk (marker visibility)
        df[f"arm_add_{side}"] = np.deg2rad(-20.0)
    return Motion("static", df, _planted(len(t)), np.zeros(len(t)))


def squat(*, depth: float = 1.0, duration_s: float = 2.6, rate_hz: float = 100.0) -> Motion:
    """One bodyweight squat: stand, descend to ~100 deg knee flexion (x depth), rise, stand.

    Peak angles follow the deep-squat kinematics reported by Hemmerich et al. (2006, J.
    Orthop. Res.) and Schoenfeld (2010, J. Strength Cond. Res. 24:3497): hip ~95 deg, knee
    ~105 deg, ankle dorsiflexion ~25 deg, with the trunk leaning forward and the arms reaching
    forward; the centre of mass is kept over the feet by the solver (`balance`).
    """
    t = _time(duration_s, rate_hz)
    df = _blank(t)
    _stance_pose(df)
    a, b = 0.25, duration_s - 0.25
    s = keyframes(t, [(0, 0), (a, 0), ((a + b) / 2, depth), (b, 0), (duration_s, 0)])
    deg = np.deg2rad
    for side in SIDES:
        df[f"hip_flexion_{side}"] += deg(95.0) * s
        df[f"knee_angle_{side}"] += deg(105.0) * s
        df[f"ankle_angle_{side}"] += deg(25.0) * s
        df[f"hip_adduction_{side}"] += deg(-6.0) * s   # knees track over the toes
        df[f"arm_flex_{side}"] += deg(70.0) * s
    df["pelvis_tilt"] = deg(-15.0) * s
    df["lumbar_extension"] = deg(-10.0) * s
    return Motion("squat", df, _planted(len(t)), np.ones(len(t)), meta={"depth": depth})


def sit_to_stand(*, duration_s: float = 3.0, rate_hz: float = 100.0) -> Motion:
    """Rising from a chair (seat at about knee height): trunk flexion, seat-off, extension.

    Phases after Schenkman et al. (1990, Phys. Ther. 70:638): flexion momentum (0.3-1.1 s),
    seat-off and momentum transfer (~1.1 s), extension (to ~2.2 s), standing. The seated part is
    carried by the chair, which the model does not have: balance is only asked once standing.
    """
    t = _time(duration_s, rate_hz)
    df = _blank(t)
    _stance_pose(df)
    deg = np.deg2rad
    k_hip = [(0, 88), (0.3, 88), (1.1, 105), (1.6, 60), (2.2, 2), (duration_s, 0)]
    k_knee = [(0, 92), (0.3, 92), (1.1, 95), (1.6, 55), (2.2, 3), (duration_s, 0)]
    k_ankle = [(0, 8), (0.3, 8), (1.1, 18), (1.6, 10), (2.2, 0), (duration_s, 0)]
    k_tilt = [(0, -2), (0.3, -2), (1.1, -20), (1.6, -10), (2.2, 0), (duration_s, 0)]
    k_lumbar = [(0, 0), (0.3, 0), (1.1, -15), (1.6, -8), (2.2, -1), (duration_s, 0)]
    for side in SIDES:
        df[f"hip_flexion_{side}"] += deg(keyframes(t, k_hip))
        df[f"knee_angle_{side}"] += deg(keyframes(t, k_knee))
        df[f"ankle_angle_{side}"] += deg(keyframes(t, k_ankle))
        df[f"arm_flex_{side}"] += deg(keyframes(t, [(0, 10), (0.3, 10), (1.1, 45), (2.2, 5),
                                                     (duration_s, 0)]))
    df["pelvis_tilt"] = deg(keyframes(t, k_tilt))
    df["lumbar_extension"] = deg(keyframes(t, k_lumbar))
    balance = smoothstep((t - 1.1) / 1.1)      # from seat-off to standing, gently
    return Motion("sit_to_stand", df, _planted(len(t)), balance)


def phase_changes(contact: np.ndarray) -> list[tuple[int, int, int]]:
    """Runs of one contact phase as (phase, first frame, end frame exclusive)."""
    edges = np.flatnonzero(np.diff(contact)) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(contact)]])
    return [(int(contact[s]), int(s), int(e)) for s, e in zip(starts, ends, strict=True)]


def smoothstep(s: np.ndarray) -> np.ndarray:
    """0 to 1 with zero slope at both ends, for s in [0, 1] (clipped outside)."""
    s = np.clip(s, 0.0, 1.0)
    return s * s * (3 - 2 * s)


def hermite_fill(values: np.ndarray, gap: np.ndarray) -> np.ndarray:
    """Copy of `values` (frames, k) with each run of `gap` frames replaced by the cubic Hermite
    curve that joins the frames on either side with their values and slopes (one-sided runs at
    the ends hold the nearest value)."""
    out = np.array(values, dtype=float)
    n = len(out)
    for phase, start, end in phase_changes(np.asarray(gap, dtype=int)):
        before, after = start - 1, end
        if not phase or (before < 0 and after >= n):
            continue
        if before < 0 or after >= n:
            out[start:end] = out[after] if before < 0 else out[before]
            continue
        v0 = out[before] - out[max(before - 1, 0)]
        v1 = out[min(after + 1, n - 1)] - out[after]
        span = after - before
        s = (np.arange(start, end) - before)[:, None] / span
        out[start:end] = ((2 * s**3 - 3 * s**2 + 1) * out[before] + (s**3 - 2 * s**2 + s) * span
                          * v0 + (3 * s**2 - 2 * s**3) * out[after] + (s**3 - s**2) * span * v1)
    return out
