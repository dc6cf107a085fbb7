"""Segment masses, lengths, centres of mass and radii of gyration from stature, mass and sex.

Source: P. de Leva (1996), "Adjustments to Zatsiorsky-Seluyanov's segment inertia parameters",
J. Biomech. 29(9):1223-1230, Table 4 (joint-centre based, female and male columns). Lengths are
the table's mean lengths divided by the mean stature of its sample (1.735 m F, 1.741 m M), so they
scale with the asked stature; masses are the table's percentages of body mass, normalised to sum
to exactly 100 % (the female column sums to 99.99 %).

Radii of gyration are fractions of the segment length about three axes: "sagittal" (the axis
normal to the sagittal plane: medio-lateral, OpenSim Z), "transverse" (antero-posterior, X) and
"longitudinal" (along the segment, Y; for the foot, which lies horizontally, along X).

This module is plain data and arithmetic (NumPy, no opensim): `osim/builtin_model.py` turns it into
bodies. Rules for lumping and splitting (trunk into pelvis and torso, foot into talus, calcn and
toes, forearm into ulna and radius) live there, next to the geometry they need.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ModelError

#: Mean stature (m) and mass (kg) of de Leva's samples, the denominators of the length fractions.
REFERENCE_STATURE_M = {"F": 1.735, "M": 1.741}
REFERENCE_MASS_KG = {"F": 61.9, "M": 73.0}

#: de Leva (1996) Table 4. Per sex and segment: (length mm, mass % of body, CM % of length from the
#: first endpoint, radius of gyration % of length: sagittal, transverse, longitudinal).
#: Endpoints: head VERT-C7 (top of head to 7th cervical vertebra, the table's second head
#: definition), upper_trunk SUPRA-XYPH (suprasternale to xiphion), middle_trunk XYPH-OMPH
#: (xiphion to omphalion), lower_trunk OMPH-MIDH (omphalion to mid hip-joint centres), upper_arm
#: SJC-EJC, forearm EJC-WJC, hand WJC-MET3 (3rd metacarpale), thigh HJC-KJC, shank KJC-AJC (the
#: table's second shank definition, to the ankle joint centre), foot HEEL-TTIP (tip of longest toe).
DE_LEVA_TABLE4 = {
    "F": {
        "head": (243.7, 6.68, 48.41, 27.1, 29.5, 26.1),
        "upper_trunk": (142.5, 15.45, 20.77, 74.6, 50.2, 71.8),
        "middle_trunk": (205.3, 14.65, 45.12, 43.3, 35.4, 41.5),
        "lower_trunk": (181.5, 12.47, 49.20, 43.3, 40.2, 44.4),
        "upper_arm": (275.1, 2.55, 57.54, 27.8, 26.0, 14.8),
        "forearm": (264.3, 1.38, 45.59, 26.1, 25.7, 9.4),
        "hand": (78.0, 0.56, 74.74, 53.1, 45.4, 33.5),
        "thigh": (368.5, 14.78, 36.12, 36.9, 36.4, 16.2),
        "shank": (438.6, 4.81, 43.52, 26.7, 26.3, 9.2),
        "foot": (228.3, 1.29, 40.14, 29.9, 27.9, 13.9),
    },
    "M": {
        "head": (242.9, 6.94, 50.02, 30.3, 31.5, 26.1),
        "upper_trunk": (170.7, 15.96, 29.99, 71.6, 45.4, 65.9),
        "middle_trunk": (215.5, 16.33, 45.02, 48.2, 38.3, 46.8),
        "lower_trunk": (145.7, 11.17, 61.15, 61.5, 55.1, 58.7),
        "upper_arm": (281.7, 2.71, 57.72, 28.5, 26.9, 15.8),
        "forearm": (268.9, 1.62, 45.74, 27.6, 26.5, 12.1),
        "hand": (86.2, 0.61, 79.00, 62.8, 51.3, 40.1),
        "thigh": (422.2, 14.16, 40.95, 32.9, 32.9, 14.9),
        "shank": (440.3, 4.33, 43.95, 25.1, 24.6, 10.2),
        "foot": (258.1, 1.37, 44.15, 25.7, 24.5, 12.4),
    },
}

#: de Leva (1996) Table 4, whole-trunk lengths (mm) used for landmark heights above mid-hip:
#: C7-MIDH (second trunk definition) and mid-shoulder-joint-centres to MIDH (third definition).
DE_LEVA_TRUNK_MM = {
    "F": {"c7_to_midh": 614.8, "sjc_to_midh": 497.9},
    "M": {"c7_to_midh": 603.3, "sjc_to_midh": 515.5},
}

#: Segments counted twice (left and right) in the mass budget.
BILATERAL = ("upper_arm", "forearm", "hand", "thigh", "shank", "foot")

#: Segments on the standing vertical chain from the top of the head to the ankle joint; their
#: lengths are scaled together so that the chain plus the ankle height equals the stature.
VERTICAL_CHAIN = ("head", "upper_trunk", "middle_trunk", "lower_trunk", "thigh", "shank")

HEIGHT_RANGE_M = (1.0, 2.5)
MASS_RANGE_KG = (20.0, 250.0)


@dataclass(frozen=True)
class Segment:
    """One de Leva segment scaled to a subject.

    length: m, between the table's endpoints. mass: kg. com: fraction of `length` from the first
    endpoint. radii: radii of gyration in m about the (sagittal, transverse, longitudinal) axes.
    """

    name: str
    length: float
    mass: float
    com: float
    radii: tuple[float, float, float]


def normalize_sex(sex: str) -> str:
    """'F' or 'M' from 'F'/'M'/'female'/'male' in any case; ModelError otherwise."""
    key = str(sex).strip().lower()
    if key in ("f", "female"):
        return "F"
    if key in ("m", "male"):
        return "M"
    raise ModelError(f"unknown sex {sex!r}", hint="use F or M (female/male)")


def validate_subject(height_m: float, mass_kg: float, sex: str) -> str:
    """Check stature (m), mass (kg) and sex; return the sex as 'F' or 'M'. Raises ModelError."""
    sex_key = normalize_sex(sex)
    for what, value, (lo, hi), unit, example in (
            ("height", height_m, HEIGHT_RANGE_M, "m", "give the stature in metres, e.g. 1.75"),
            ("mass", mass_kg, MASS_RANGE_KG, "kg", "give the body mass in kilograms, e.g. 70")):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if isinstance(value, bool) or not lo <= number <= hi:   # NaN fails the comparison too
            raise ModelError(f"{what} {value!r} {unit} is outside {lo}-{hi} {unit}", hint=example)
    return sex_key


def mass_fractions(sex: str) -> dict[str, float]:
    """Fraction of body mass per single segment, normalised so that the whole body sums to 1."""
    table = DE_LEVA_TABLE4[normalize_sex(sex)]
    total = sum(row[1] * (2 if name in BILATERAL else 1) for name, row in table.items())
    return {name: row[1] / total for name, row in table.items()}


def segment_length(name: str, height_m: float, sex: str) -> float:
    """Unscaled de Leva length (m) of a segment for this stature (before chain normalisation)."""
    sex_key = normalize_sex(sex)
    return DE_LEVA_TABLE4[sex_key][name][0] / 1000.0 / REFERENCE_STATURE_M[sex_key] * height_m


def chain_factor(height_m: float, sex: str, ankle_height_m: float) -> float:
    """Scale for the vertical-chain lengths so head + trunk (C7 to mid-hip) + thigh + shank +
    ankle height equals the stature. de Leva's own lengths sum to 98.2 % (M) and 96.0 % (F) of
    stature before the ankle height is added, because his endpoints are bony landmarks, not a
    plumb line; the factor is close to 1 (about 0.98 M, 1.00 F)."""
    sex_key = normalize_sex(sex)
    raw = sum(segment_length(n, height_m, sex_key) for n in ("head", "thigh", "shank"))
    raw += trunk_length("c7_to_midh", height_m, sex_key, factor=1.0)
    if not 0.0 < ankle_height_m < 0.2 * height_m:
        raise ModelError(f"ankle height {ankle_height_m} m is implausible for stature {height_m} m")
    return (height_m - ankle_height_m) / raw


def trunk_length(which: str, height_m: float, sex: str, factor: float) -> float:
    """A whole-trunk distance (m) above mid-hip: 'c7_to_midh' or 'sjc_to_midh', times `factor`."""
    sex_key = normalize_sex(sex)
    fraction = DE_LEVA_TRUNK_MM[sex_key][which] / 1000.0 / REFERENCE_STATURE_M[sex_key]
    return fraction * height_m * factor


def body_segments(height_m: float, mass_kg: float, sex: str,
                  ankle_height_m: float) -> tuple[dict[str, Segment], float]:
    """All de Leva segments for a subject, and the vertical-chain factor applied to them.

    height_m: stature (m); mass_kg: body mass (kg); ankle_height_m: height of the ankle joint
    centre above the floor when standing (m), set by the foot geometry of the model.
    Segments on VERTICAL_CHAIN have their lengths multiplied by `chain_factor(...)`; limbs and the
    foot keep de Leva's stature fractions. Masses sum to exactly `mass_kg` over the whole body.
    """
    sex_key = validate_subject(height_m, mass_kg, sex)
    k = chain_factor(height_m, sex_key, ankle_height_m)
    fractions = mass_fractions(sex_key)
    segments = {}
    for name, (_, _, com, r_sag, r_trans, r_long) in DE_LEVA_TABLE4[sex_key].items():
        length = segment_length(name, height_m, sex_key) * (k if name in VERTICAL_CHAIN else 1.0)
        radii = (r_sag / 100.0 * length, r_trans / 100.0 * length, r_long / 100.0 * length)
        segments[name] = Segment(name, length, fractions[name] * mass_kg, com / 100.0, radii)
    return segments, k


def principal_inertia(mass: float, radii: tuple[float, float, float],
                      long_axis: int = 1) -> np.ndarray:
    """Diagonal inertia (kg m^2) about the centre of mass from de Leva radii (m) ordered
    (sagittal, transverse, longitudinal): sagittal about z (medio-lateral), longitudinal about
    `long_axis` (1 = y for upright segments, 0 = x for the foot), transverse about the third."""
    r_sag, r_trans, r_long = radii
    diag = [0.0, 0.0, 0.0]
    diag[2] = mass * r_sag ** 2
    diag[long_axis] = mass * r_long ** 2
    diag[1 if long_axis == 0 else 0] = mass * r_trans ** 2
    return np.diag(diag)


def lump(parts) -> tuple[float, np.ndarray, np.ndarray]:
    """One rigid body from parts [(mass kg, com m, inertia about own com kg m^2)], all in one
    frame: total mass, combined com, and inertia about it (parallel-axis theorem)."""
    mass = sum(m for m, _, _ in parts)
    com = sum(m * np.asarray(c, float) for m, c, _ in parts) / mass
    inertia = np.zeros((3, 3))
    for m, c, i in parts:
        d = np.asarray(c, float) - com
        inertia += np.asarray(i) + m * (d @ d * np.eye(3) - np.outer(d, d))
    return mass, com, inertia
