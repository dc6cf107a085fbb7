"""What one window needs, read without OpenSim: the spec, the exported tree, the actuators.

The spec is `osim.moco_track.WindowSpec` as JSON (model, coordinates, t0, t1, workdir, settings,
grf) plus `tree`: the exported tree JSON (`osim.export_tree.write_tree`) of the tracking model,
either already welded or the full model (coordinates of `settings["weld_joints"]` are then held
at their defaults, which is where ModOpReplaceJointsWithWelds welds them). The actuators
(CoordinateActuator name, coordinate, optimal force, control bounds) are read from the .osim
XML itself, so this process never imports opensim (DESIGN.md trap 2).
"""
from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from models.contact_model import spheres_from_description
from models.tree import build_tree
from osim.moco_track import TrackSettings, WindowSpec
from pipeline.errors import ModelError

from .dynamics import ModelSetup

#: Keys a collocation spec may carry beyond WindowSpec's: `guess` is the folder of a solution
#: of the same window (kinematics.sto, kinetics.sto as either engine writes them) to start from;
#: `friction_transition_velocity` (m/s) replaces every contact sphere's, a smoother friction
#: for a continuation stage of the retry ladder (`osim.ground_truth.solve_with_retries`).
EXTRA_KEYS = ("tree", "engine", "guess", "friction_transition_velocity")


@dataclass(frozen=True)
class Actuator:
    name: str
    coordinate: str
    optimal_force: float
    min_control: float = -math.inf
    max_control: float = math.inf


def load_spec(path) -> tuple[WindowSpec, dict, TrackSettings]:
    """(WindowSpec, extras {'tree': path, ...}, settings) from a spec JSON file."""
    raw = json.loads(Path(path).read_text())
    extras = {k: raw.pop(k) for k in EXTRA_KEYS if k in raw}
    if "tree" not in extras:
        raise ModelError("collocation spec has no 'tree' (exported tree JSON of the model)",
                         file=path, hint="write it with osim.export_tree.write_tree(model, json)")
    spec = WindowSpec(**raw)
    defaults = asdict(TrackSettings())
    unknown = set(spec.settings) - set(defaults)
    if unknown:
        raise ModelError(f"unknown settings {sorted(unknown)}", file=path)
    merged = {**defaults, **spec.settings}
    merged["weld_joints"] = tuple(merged["weld_joints"])
    return spec, extras, TrackSettings(**merged)


def _float(elem, tag: str, default: float) -> float:
    node = elem.find(tag)
    return default if node is None or not (node.text or "").strip() else float(node.text)


def read_actuators(model_path) -> list[Actuator]:
    """Every CoordinateActuator of an .osim file, in document order (as Moco lists them)."""
    path = Path(model_path)
    if not path.exists():
        raise ModelError("model file not found", file=path)
    root = ET.parse(path).getroot()
    out = []
    for elem in root.iter("CoordinateActuator"):
        coordinate = (elem.findtext("coordinate") or "").strip()
        if not coordinate:
            raise ModelError(f"actuator {elem.get('name')} names no coordinate", file=path)
        out.append(Actuator(elem.get("name"), coordinate, _float(elem, "optimal_force", 1.0),
                            _float(elem, "min_control", -math.inf),
                            _float(elem, "max_control", math.inf)))
    return out


def model_setup(tree_desc: dict, actuators: list[Actuator],
                weld_joints: tuple[str, ...], friction_kink: float = 0.0) -> ModelSetup:
    """Optimized coordinates (all but welded ones), held values, spheres and actuators;
    friction_kink: the rounding of the spheres' friction ramp (`TrackSettings`)."""
    tree = build_tree(tree_desc)
    welded = set()
    for joint in tree_desc["joints"]:
        if joint["name"] in weld_joints:
            welded.update(joint["coordinates"])
    names = tree.coordinate_names
    index = {n: i for i, n in enumerate(names)}
    couplers = []
    for c in tree_desc.get("coordinate_couplers", []):
        if c["dependent"] in welded:
            continue
        if c["independent"] in welded:
            raise ModelError(f"coupler {c['name']}: {c['dependent']} follows the welded "
                             f"coordinate {c['independent']}", hint="weld both joints")
        couplers.append((index[c["dependent"]], index[c["independent"]], c["function"]))
    dependent = {names[d] for d, _, _ in couplers}
    free = [i for i, n in enumerate(names) if n not in welded and n not in dependent]
    slot = {names[i]: k for k, i in enumerate(free)}
    kept = [a for a in actuators if a.coordinate not in welded]
    unknown = [a.name for a in kept if a.coordinate not in slot]
    if unknown:
        raise ModelError(f"actuators {unknown} drive coordinates the tree does not have")
    body_index = {n: i for i, n in enumerate(tree.body_names)}
    return ModelSetup(
        tree=tree, free=free,
        fixed_values=np.array([c["default"] for c in tree_desc["coordinates"]], dtype=float),
        spheres=spheres_from_description(tree_desc, body_index), couplers=couplers,
        actuator_names=[a.name for a in kept],
        actuator_coordinate=[slot[a.coordinate] for a in kept],
        optimal_force=np.array([a.optimal_force for a in kept], dtype=float),
        friction_kink=float(friction_kink))


def control_bounds(actuators: list[Actuator], names: list[str], residual_bound: float):
    """(lower, upper) arrays of the controls: residuals (`residual_*`) within +-residual_bound,
    other actuators within their own min/max control (OpenSim's default: unbounded)."""
    by_name = {a.name: a for a in actuators}
    lo, hi = [], []
    for name in names:
        a = by_name[name]
        if name.startswith("residual_"):
            lo.append(-residual_bound)
            hi.append(residual_bound)
        else:
            lo.append(a.min_control)
            hi.append(a.max_control)
    return np.array(lo), np.array(hi)
