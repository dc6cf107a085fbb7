"""Table names and units. Column names follow OpenSim; units travel in Parquet field metadata."""
from __future__ import annotations

import re

TABLES = ("markers", "kinematics", "kinetics", "grf_measured")
CATALOGS = ("subjects", "trials", "solves", "failures")

# Coordinates that are translations (metres) rather than rotations (radians). A lab model may
# add others; callers pass them explicitly when they know better.
TRANSLATIONAL_SUFFIXES = ("_tx", "_ty", "_tz")

_RULES: list[tuple[re.Pattern, str]] = [
    (re.compile(r"^time$"), "s"),
    (re.compile(r"^ground_force_.*_v[xyz]$"), "N"),
    (re.compile(r"^ground_force_.*_p[xyz]$"), "m"),
    (re.compile(r"^ground_torque_.*_[xyz]$"), "N*m"),
    (re.compile(r".*_moment$"), "N*m"),
    (re.compile(r".*_force$"), "N"),
    (re.compile(r".*_residual_force_[xyz]$"), "N"),
    (re.compile(r".*_residual_moment_[xyz]$"), "N*m"),
    (re.compile(r".*_rmse$|.*_max_error$"), "m"),
]


def unit_of(column: str, table: str, translational: set[str] | None = None) -> str:
    """The unit of a column, from OpenSim's naming conventions.

    Markers are `<name>_x|y|z` in metres; kinematics columns are coordinates (`hip_flexion_r`),
    speeds (`<coord>_speed`) and accelerations (`<coord>_accel`), in rad or m by coordinate kind.
    """
    for pattern, unit in _RULES:
        if pattern.match(column):
            return unit
    if table == "markers":
        return "m"
    if table == "kinematics":
        base, suffix = column, ""
        for tail, per in (("_speed", "/s"), ("_accel", "/s^2")):
            if column.endswith(tail):
                base, suffix = column[: -len(tail)], per
        is_translation = (translational and base in translational) or base.endswith(
            TRANSLATIONAL_SUFFIXES)
        return ("m" if is_translation else "rad") + suffix
    return ""
