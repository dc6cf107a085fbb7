"""OpenSim's SmoothSphereHalfSpaceForce (Serrancoli & Falisse), written once for any backend.

The formula is Simbody's `SmoothSphereHalfSpaceForceImpl::calcForce` (OpenSim 4.x), term for
term: a Hertz normal force smoothed through the contact onset, a Hunt-Crossley dissipation
factor smoothed at the velocity where it would turn negative, and Coulomb (static/dynamic) plus
viscous friction along the slip velocity with a smoothed slip speed.

Vectors are tuples of three scalars and `m` is a math namespace with `sqrt`, `tanh` and `fmin`
(the `numpy` module for arrays, the `casadi` module for symbols; torch would do too), so that
the same lines serve checks against OpenSim, training code and the CasADi engine. No torch or
casadi import here. Units: m, m/s, N.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.errors import ModelError


@dataclass(frozen=True)
class SphereContact:
    """One sphere against a half-space fixed in ground (exported by osim/export_tree.py)."""
    body: int                 # tree body index of the sphere
    center: np.ndarray        # (3,) m, sphere centre in the body frame
    radius: float             # m
    normal: np.ndarray        # (3,) unit, the half-space's x axis in ground: points *into* it
    plane_point: np.ndarray   # (3,) m, origin of the half-space frame in ground
    stiffness: float          # N/m^2
    dissipation: float        # s/m
    static_friction: float
    dynamic_friction: float
    viscous_friction: float   # s/m
    transition_velocity: float  # m/s
    hertz_smoothing: float    # 1/m   (bd)
    hunt_crossley_smoothing: float  # s/m (bv)
    constant_contact_force: float   # N^(2/3)-ish smoothing constant (cf)


def spheres_from_description(desc: dict, body_index: dict[str, int]) -> list[SphereContact]:
    """SphereContact entries from an exported tree's `contact_spheres` (ground half-spaces)."""
    out = []
    for s in desc.get("contact_spheres", []):
        half = s["half_space"]
        if half["body"] != "ground":
            raise ModelError(f"contact {s['name']}: half-space on body {half['body']}; "
                             "only a floor fixed in ground is supported")
        rot = np.asarray(half["R"], dtype=float)
        out.append(SphereContact(
            body=body_index[s["body"]], center=np.asarray(s["location"], dtype=float),
            radius=float(s["radius"]), normal=rot[:, 0].copy(),
            plane_point=np.asarray(half["p"], dtype=float),
            stiffness=s["stiffness"], dissipation=s["dissipation"],
            static_friction=s["static_friction"], dynamic_friction=s["dynamic_friction"],
            viscous_friction=s["viscous_friction"],
            transition_velocity=s["transition_velocity"],
            hertz_smoothing=s.get("hertz_smoothing", 300.0),
            hunt_crossley_smoothing=s.get("hunt_crossley_smoothing", 50.0),
            constant_contact_force=s.get("constant_contact_force", 1e-5)))
    return out


def _dot(a, b):
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def contact_point(sphere: SphereContact, center_in_ground):
    """(indentation m, contact point in ground): the point lies midway into the overlap, on the
    line from the centre along the half-space normal (Sherman et al. 2011)."""
    n = sphere.normal
    rel = tuple(center_in_ground[i] - sphere.plane_point[i] for i in range(3))
    indentation = _dot(rel, n) + sphere.radius
    point = tuple(center_in_ground[i] + (sphere.radius - 0.5 * indentation) * n[i]
                  for i in range(3))
    return indentation, point


def contact_force(m, sphere: SphereContact, indentation, point_velocity,
                  friction_kink: float = 0.0):
    """Force (3-tuple, N, ground) that the half-space applies to the sphere's body at the
    contact point, given the indentation (m) and that body point's velocity in ground (m/s).

    friction_kink: Simbody ramps the Coulomb friction up with min(v_slip / v_transition, 1),
    which has a kink where the slip reaches the transition velocity. With friction_kink = d > 0
    the minimum is rounded, (x + 1 - sqrt((x - 1)^2 + d^2)) / 2 with x = v_slip / v_transition:
    smooth, below Simbody's ramp by at most d / 2 (at the kink; d / 40 ten widths away), so the
    friction differs by at most d / 2 times (static friction x normal force). 0: Simbody's law."""
    n = sphere.normal
    vn = _dot(point_velocity, n)
    vt = tuple(point_velocity[i] - vn * n[i] for i in range(3))
    cf, bd, bv = (sphere.constant_contact_force, sphere.hertz_smoothing,
                  sphere.hunt_crossley_smoothing)
    c = sphere.dissipation
    k = 0.5 * sphere.stiffness ** (2.0 / 3.0)
    # (sqrt(d^2 + cf))^(3/2) written as (d^2 + cf)^(3/4), smooth for either backend.
    depth = m.sqrt(indentation * indentation + cf)
    fh = (4.0 / 3.0) * k * np.sqrt(sphere.radius * k) * depth * m.sqrt(depth)
    fh = fh * (0.5 + 0.5 * m.tanh(bd * indentation))
    fhc = fh * (1.0 + 1.5 * c * vn)
    fhc = fhc * (0.5 + 0.5 * m.tanh(bv * (vn + 2.0 / (3.0 * c))))
    vslip = m.sqrt(_dot(vt, vt) + cf)
    vrel = vslip / sphere.transition_velocity
    us, ud, uv = sphere.static_friction, sphere.dynamic_friction, sphere.viscous_friction
    if friction_kink > 0.0:
        ramp = 0.5 * (vrel + 1.0 - m.sqrt((vrel - 1.0) ** 2 + friction_kink ** 2))
    else:
        ramp = m.fmin(vrel, 1.0)
    ff = fhc * (ramp * (ud + 2.0 * (us - ud) / (1.0 + vrel * vrel)) + uv * vslip)
    # Simbody's force acts on the half-space; the sphere's body gets its negative.
    return tuple(-(fhc * n[i] + ff * vt[i] / vslip) for i in range(3))
