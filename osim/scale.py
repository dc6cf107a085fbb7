"""Per-subject scaling with OpenSim's ScaleTool: segment sizes from a static trial, body masses
to the subject's mass, soft-tissue marker offsets from the static pose.

    model, report = scale_model(build_model(1.70, 65.0, "F"), static.markers, 72.6,
                                workdir=Path("scratch/subject01"))

Static markers are renamed (`marker_map`), cleaned of gaps and written as a TRC in mm (the tool
reads TRC through OpenSim's old MarkerData path, which cannot skip gaps). Measurements (marker
pairs per segment) come from `PLUG_IN_GAIT` for the built-in names, else are derived from the
model's joints. ModelScaler scales (mass distribution kept), MarkerPlacer moves soft-tissue
markers; everything stays in `workdir`. docs/scaling.md explains the choices for lab staff.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import opensim
import pandas as pd

from osim.markers import BONY_LANDMARKS
from pipeline.errors import ModelError
from pipeline.opensim_files import read_sto, rename_state_columns, write_trc
from pipeline.trial import marker_columns, marker_names

MIN_MARKERS = 6           # fewer in common with the model cannot pose, let alone scale, a body
MIN_SEEN_FRACTION = 0.5   # a static marker missing in more frames than this is dropped
MIN_PAIR_M = 0.08         # derived pairs shorter than this measure noise more than size
LANDMARK_WEIGHT = 10.0    # static-pose IK weights: landmarks are where the model says they are,
SOFT_TISSUE_WEIGHT = 1.0  # soft-tissue markers were stuck on anywhere and are moved afterwards
XYZ = "X Y Z"


@dataclass(frozen=True)
class Measurement:
    """ScaleTool measurement: the mean experimental/model distance ratio over `pairs` scales the
    `bodies` ({body: axes, e.g. "X Y Z"}) by that factor."""

    name: str
    pairs: tuple[tuple[str, str], ...]
    bodies: dict
    source: str = "given"


def _pig(name: str, pairs, bodies, axes: str = XYZ) -> Measurement:
    """A Plug-in Gait measurement; `@` stands for the side (R/L in markers, r/l in bodies)."""
    pairs = tuple(dict.fromkeys((a.replace("@", s), b.replace("@", s))
                                for s in "RL" for a, b in pairs))
    bodies = {b.replace("@", s): axes for b in bodies for s in "rl"}
    return Measurement(name, pairs, bodies, "plug-in gait")


#: Measurements for Plug-in Gait marker names (the built-in model's), left and right together:
#: bilateral averages halve the noise, and lab subjects are rarely asymmetric enough to matter.
PLUG_IN_GAIT = (
    _pig("pelvis_width", [("RASI", "LASI")], ["pelvis"], "Y Z"),
    _pig("pelvis_depth", [("@ASI", "@PSI")], ["pelvis"], "X"),
    _pig("thigh", [("@ASI", "@KNE"), ("@ASI", "@KNM")], ["femur_@"]),
    _pig("shank", [("@KNE", "@ANK"), ("@KNM", "@MMA")], ["tibia_@"]),
    _pig("foot", [("@HEE", "@TOE"), ("@HEE", "@MT1"), ("@HEE", "@MT5")],
         ["talus_@", "calcn_@", "toes_@"]),
    _pig("torso_length", [("C7", "SACR"), ("CLAV", "SACR")], ["torso"], "X Y"),
    _pig("torso_width", [("RSHO", "LSHO")], ["torso"], "Z"),
    _pig("upper_arm", [("@SHO", "@ELB")], ["humerus_@"]),
    _pig("forearm", [("@ELB", "@WRA"), ("@ELM", "@WRB")], ["ulna_@", "radius_@"]),
    _pig("hand", [("@WRA", "@FIN"), ("@WRB", "@FIN")], ["hand_@"]),
)


def load_lab_model(path) -> opensim.Model:
    """A lab's .osim model, finalized and checked by initSystem(). Raises ModelError when the
    file is missing or OpenSim cannot read or assemble it."""
    path = Path(path)
    if not path.is_file():
        raise ModelError("model file not found", file=path,
                         hint="fix the \"model\" entry of subject.json or remove it to use the "
                              "built-in model")
    try:
        model = opensim.Model(str(path))
        model.initSystem()
    except Exception as exc:  # OpenSim raises RuntimeError subclasses with its own message
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"OpenSim cannot load the model: {first}", file=path,
                         hint="open it in the OpenSim GUI, fix what it reports, save it again"
                         ) from None
    return model


# -- static markers -------------------------------------------------------------------------------
def _clean_static(markers: pd.DataFrame, model_markers: set, marker_map: dict | None,
                  time_range, where: dict) -> tuple[pd.DataFrame, dict, list]:
    """(cleaned markers in metres with only usable markers and no NaN, dropped {name: reason},
    model markers missing from the trial)."""
    df = markers.copy()
    if marker_map:
        renamed = [marker_map.get(n, n) for n in marker_names(df.columns)]
        if len(set(renamed)) != len(renamed):
            dupes = sorted({n for n in renamed if renamed.count(n) > 1})
            raise ModelError(f"the marker map sends several lab markers to {dupes}", **where,
                             hint="each model marker may receive one lab marker")
        df.columns = marker_columns(renamed)
    if time_range is not None:
        t0, t1 = (float(t) for t in time_range)
        df = df.loc[(df.index >= t0 - 1e-9) & (df.index <= t1 + 1e-9)]
        if df.empty:
            raise ModelError(f"no static frames in time range {t0}-{t1} s", **where,
                             hint="pick a time range inside the static trial")
    xyz = df.to_numpy(dtype=float).reshape(len(df), -1, 3)
    if not np.isfinite(xyz).any():
        raise ModelError("the static trial has no marker positions (all NaN)", **where,
                         hint="check the static trial in Vicon/Nexus; the subject must be seen")
    names = marker_names(df.columns)
    seen = np.isfinite(xyz).all(axis=2).mean(axis=0)
    dropped, keep = {}, []
    for name, fraction in zip(names, seen, strict=True):
        if name not in model_markers:
            dropped[name] = "not on the model"
        elif fraction < MIN_SEEN_FRACTION:
            dropped[name] = f"seen in {100 * fraction:.0f}% of the static frames"
        else:
            keep.append(name)
    missing = sorted(model_markers - set(names))
    if len(keep) < MIN_MARKERS:
        raise ModelError(
            f"only {len(keep)} static markers match the model ({MIN_MARKERS} needed); model "
            f"markers missing from the trial: {', '.join(missing[:30]) or 'none'}; trial markers "
            f"not used: {', '.join(f'{k} ({v})' for k, v in dropped.items()) or 'none'}",
            **where, hint="map the lab's marker names to the model's in subject.json \"markers\"")
    # A static pose barely moves: linear interpolation in time closes the gaps of the markers
    # kept (seen in at least half the frames), the ends take the nearest value.
    return df[marker_columns(keep)].interpolate(method="index", limit_direction="both"), \
        dropped, missing


def _write_static_trc(df: pd.DataFrame, path: Path) -> tuple[float, float]:
    """TRC in mm; a single frame is written twice (0.01 s apart) so the file has a rate."""
    if len(df) == 1:
        df = pd.concat([df, df.set_axis(df.index + 0.01)])
    times = df.index.to_numpy(dtype=float)
    rate = 1.0 / float(np.median(np.diff(times)))
    out = pd.DataFrame(df.to_numpy() * 1e3, index=pd.Index(times, name="time"),
                       columns=df.columns)
    write_trc(path, out, units="mm", data_rate=rate)
    return float(times[0]), float(times[-1])


# -- measurements ---------------------------------------------------------------------------------
def _available(measurements, markers: set, bodies: set) -> list[Measurement]:
    out = []
    for m in measurements:
        pairs = tuple(p for p in m.pairs if p[0] in markers and p[1] in markers)
        scaled = {b: a for b, a in m.bodies.items() if b in bodies}
        if pairs and scaled:
            out.append(Measurement(m.name, pairs, scaled, m.source))
    return out


def _derived(model: opensim.Model, available: set, covered: set) -> list[Measurement]:
    """One measurement per uncovered body, from the default pose: the marker nearest its
    proximal joint centre (on the body, parent or grandparent) to the marker nearest its farthest
    distal joint centre (on the body or a child), or to the body's own marker farthest from the
    proximal joint where it has no child. The root takes its two markers farthest apart. Pairs
    under MIN_PAIR_M, and bodies shorter than that, get none (they inherit, see `_inherit`)."""
    model = model.clone()
    state = model.initSystem()
    pos = {m.getName(): m.getLocationInGround(state).to_numpy() for m in model.getMarkerSet()
           if m.getName() in available}
    on = {m.getName(): m.getParentFrame().findBaseFrame().getName()
          for m in model.getMarkerSet()}
    joints = [(j.getName(), j.getParentFrame().findBaseFrame().getName(),
               j.getChildFrame().findBaseFrame().getName(),
               j.getChildFrame().getPositionInGround(state).to_numpy())
              for j in model.getJointSet()]
    parent_of = {c: p for _, p, c, _ in joints}
    out = []
    for _, parent, body, centre in joints:
        if body in covered:
            continue
        own = [m for m in pos if on[m] == body]
        if parent == "ground":
            pairs = [(a, b) for i, a in enumerate(own) for b in own[i + 1:]]
            pair = max(pairs, key=lambda p: np.linalg.norm(pos[p[0]] - pos[p[1]]), default=None)
        else:
            # The grandparent too: a short parent (ulna under the radius) carries few markers.
            up = {body, parent, parent_of.get(parent)}
            near = [m for m in pos if on[m] in up]
            a = min(near, key=lambda m: np.linalg.norm(pos[m] - centre), default=None)
            distal = [(c, j) for _, p, c, j in joints if p == body]
            if distal:
                _, far = max(distal, key=lambda cj: np.linalg.norm(cj[1] - centre))
                kids = {c for c, _ in distal}
                ends = [m for m in pos if on[m] == body or on[m] in kids]
                b = min(ends, key=lambda m: np.linalg.norm(pos[m] - far), default=None)
                short = np.linalg.norm(far - centre) < MIN_PAIR_M
            else:
                b = max(own, key=lambda m: np.linalg.norm(pos[m] - centre), default=None)
                short = False
            pair = (a, b) if a and b and a != b and not short else None
        if pair and np.linalg.norm(pos[pair[0]] - pos[pair[1]]) >= MIN_PAIR_M:
            out.append(Measurement(body, (pair,), {body: XYZ}, "derived"))
    return out


def _inherit(model: opensim.Model, measurements: list[Measurement]) -> tuple[list, dict]:
    """Bodies without a measurement join their parent's (else a child's); {body: from body}."""
    links = [(j.getParentFrame().findBaseFrame().getName(),
              j.getChildFrame().findBaseFrame().getName()) for j in model.getJointSet()]
    bodies = [b.getName() for b in model.getBodySet()]
    members = {m.name: dict(m.bodies) for m in measurements}
    owner = {b: [n for n, bs in members.items() if b in bs] for b in bodies}
    inherited, changed = {}, True
    while changed:
        changed = False
        for body in bodies:
            if owner[body]:
                continue
            relatives = [p for p, c in links if c == body] + [c for p, c in links if p == body]
            source = next((r for r in relatives if owner.get(r)), None)
            if source:
                for name in owner[source]:
                    members[name][body] = members[name][source]
                owner[body], inherited[body], changed = list(owner[source]), source, True
    return [Measurement(m.name, m.pairs, members[m.name], m.source) for m in measurements], \
        inherited


# -- the ScaleTool setup --------------------------------------------------------------------------
def _el(tag: str, *children, text=None, **attrs) -> ET.Element:
    element = ET.Element(tag, attrs)
    element.text = None if text is None else str(text)
    element.extend(children)
    return element


def _props(**values) -> list[ET.Element]:
    return [_el(key, text=value) for key, value in values.items()]


def _set(tag: str, *items) -> ET.Element:
    return _el(tag, _el("objects", *items))


def _setup_xml(name, mass_kg, measurements, weights: dict, times) -> ET.ElementTree:
    """ScaleTool setup; file names are relative to the setup's folder, as the tool expects."""
    span = f"{times[0]!r} {times[1]!r}"
    measurement_set = _set("MeasurementSet", *(_el(
        "Measurement", _el("apply", text="true"),
        _set("MarkerPairSet", *(_el("MarkerPair", _el("markers", text=f"{a} {b}"))
                                for a, b in m.pairs)),
        _set("BodyScaleSet", *(_el("BodyScale", _el("axes", text=axes), name=body)
                               for body, axes in m.bodies.items())),
        name=m.name) for m in measurements))
    scaler = _el("ModelScaler", *_props(apply="true", scaling_order="measurements"),
                 measurement_set,
                 *_props(marker_file="static.trc", time_range=span,
                         preserve_mass_distribution="true",
                         output_model_file="scaled_only.osim", output_scale_file="scale_set.xml"))
    tasks = _set("IKTaskSet", *(_el("IKMarkerTask", *_props(apply="true", weight=repr(float(w))),
                                    name=marker) for marker, w in weights.items()))
    placer = _el("MarkerPlacer", *_props(apply="true"), tasks,
                 *_props(marker_file="static.trc", time_range=span,
                         output_motion_file="static_pose.mot", output_model_file="scaled.osim",
                         max_marker_movement="-1"))
    tool = _el("ScaleTool", *_props(mass=repr(float(mass_kg))),
               _el("GenericModelMaker", *_props(model_file="generic.osim")), scaler, placer,
               name=name)
    root = _el("OpenSimDocument", tool, Version="40000")
    ET.indent(root)
    return ET.ElementTree(root)


# -- after the tool ---------------------------------------------------------------------------------
def _restore_markers(scaled: opensim.Model, scaled_only: opensim.Model, fixed: dict) -> list:
    """MarkerPlacer deletes model markers the static trial lacks; they come back with their
    scaled offsets (other trials may have them). The input model's `fixed` flags are restored."""
    restored = []
    ms = scaled_only.getMarkerSet()
    for i in range(ms.getSize()):
        if not scaled.getMarkerSet().contains(ms.get(i).getName()):
            scaled.addMarker(ms.get(i).clone())
            restored.append(ms.get(i).getName())
    for marker in scaled.getMarkerSet():
        marker.set_fixed(fixed.get(marker.getName(), False))
    scaled.finalizeConnections()
    return restored


def _scale_contact(scaled: opensim.Model, generic: opensim.Model, factors: dict) -> None:
    """ModelScaler leaves ContactSphere centres where they were: put them on the scaled feet
    (radius kept, as Moco's examples do). Centres that OpenSim did move are left alone."""
    before = {g.getName(): g.get_location().to_numpy() for g in generic.getContactGeometrySet()}
    for geometry in scaled.getContactGeometrySet():
        sphere = opensim.ContactSphere.safeDownCast(geometry)
        if sphere is None or sphere.getName() not in before:
            continue
        body = sphere.getFrame().findBaseFrame().getName()
        now = sphere.get_location().to_numpy()
        if body in factors and np.allclose(now, before[sphere.getName()], atol=1e-12):
            sphere.set_location(opensim.Vec3(*(now * np.asarray(factors[body]))))


def _static_errors(model: opensim.Model, pose_file: Path, target: dict) -> dict:
    """{marker: distance (m)} between model and mean experimental positions at the static pose."""
    pose = rename_state_columns(read_sto(pose_file))
    model = model.clone()
    state = model.initSystem()
    coords = model.getCoordinateSet()
    for name in pose.columns:
        if coords.contains(name):
            coords.get(name).setValue(state, float(pose[name].iloc[0]), False)
    model.realizePosition(state)
    ms = model.getMarkerSet()
    return {n: float(np.linalg.norm(ms.get(n).getLocationInGround(state).to_numpy() - p))
            for n, p in target.items()}


def _factor(m: Measurement, factors: dict) -> float:
    """The factor a measurement gave: its first body's factor on that body's first axis."""
    body, axes = next(iter(m.bodies.items()))
    return float(factors[body]["XYZ".index(axes.split()[0])])


def _rms(values) -> float:
    values = np.asarray(list(values), float)
    return float(np.sqrt(np.mean(values ** 2))) if len(values) else float("nan")


def scale_model(model: opensim.Model, static_markers: pd.DataFrame, mass_kg: float, *,
                marker_map: dict | None = None, time_range=None,
                marker_weights: dict | None = None, measurements=None,
                move_markers: str = "soft_tissue", trial: str | None = None,
                workdir: Path) -> tuple[opensim.Model, dict]:
    """Scale `model` (not modified) to the subject of a static trial with OpenSim's ScaleTool.

    static_markers: Trial.markers of the static trial (index time s; `<m>_x/_y/_z`, metres,
        OpenSim frame; NaN where unseen). mass_kg: subject mass; the scaled model weighs exactly
        this, with the generic model's mass distribution.
    marker_map: {lab name: model name}, applied first. time_range: (t0, t1) s of the static
        pose; default the whole trial. marker_weights: static-pose IK weights by (lab or model)
        name; default 10 for landmarks, 1 for soft-tissue markers.
    measurements: explicit `Measurement`s replacing the automatic ones.
    move_markers: "soft_tissue" (default) moves only markers that are not landmarks (landmarks:
        the model's bony-landmark markers and every marker a measurement uses) onto the static
        data; "all" moves every marker (OpenSim's default), "none" moves none.
    trial: the static trial's name, for error messages. workdir: scratch folder for the tool.
    Returns (scaled model, finalized; report dict, see docs/scaling.md). Raises ModelError.
    """
    where = {"file": static_markers.attrs.get("source"), "trial": trial}
    if not (isinstance(mass_kg, (int, float, np.floating)) and 0 < mass_kg < np.inf):
        raise ModelError(f"subject mass {mass_kg!r} kg must be a positive number", **where,
                         hint="fix \"mass_kg\" in subject.json")
    if move_markers not in ("soft_tissue", "all", "none"):
        raise ModelError(f"move_markers={move_markers!r}: use 'soft_tissue', 'all' or 'none'")
    ms = model.getMarkerSet()
    fixed = {ms.get(i).getName(): bool(ms.get(i).get_fixed()) for i in range(ms.getSize())}
    if not fixed:
        raise ModelError(f"model {model.getName()!r} has no markers", **where,
                         hint="add the lab's marker set to the model in the OpenSim GUI")
    static, dropped, missing = _clean_static(static_markers, set(fixed), marker_map,
                                             time_range, where)
    used = marker_names(static.columns)
    bodies = {b.getName() for b in model.getBodySet()}
    if measurements is None:
        chosen = _available(PLUG_IN_GAIT, set(used), bodies)
        covered = {b for m in chosen for b in m.bodies}
        chosen += _derived(model, set(used), covered)
    else:
        chosen = _available(measurements, set(used), bodies)
    if not chosen:
        raise ModelError("no marker pair of the static trial can measure a segment", **where,
                         hint="pass measurements=[Measurement(...)] naming marker pairs")
    chosen, inherited = _inherit(model, chosen)
    landmarks = {m for m in used if m in BONY_LANDMARKS} | {m for x in chosen for p in x.pairs
                                                           for m in p}
    movable = {"soft_tissue": set(used) - landmarks, "all": set(used), "none": set()}[move_markers]
    weights = {m: LANDMARK_WEIGHT if m in landmarks else SOFT_TISSUE_WEIGHT for m in used}
    for name, weight in (marker_weights or {}).items():
        name = (marker_map or {}).get(name, name)
        if name in weights:
            weights[name] = float(weight)

    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    generic = model.clone()
    for marker in generic.getMarkerSet():
        marker.set_fixed(marker.getName() not in movable)
    generic.printToXML(str(workdir / "generic.osim"))
    times = _write_static_trc(static, workdir / "static.trc")
    setup = workdir / "setup_scale.xml"
    _setup_xml(f"{model.getName()}_scaled", mass_kg, chosen, weights, times).write(
        setup, encoding="UTF-8", xml_declaration=True)
    for old in ("scaled.osim", "scaled_only.osim", "scale_set.xml", "static_pose.mot"):
        (workdir / old).unlink(missing_ok=True)
    if not opensim.ScaleTool(str(setup)).run() or not (workdir / "scaled.osim").is_file():
        raise ModelError("OpenSim's ScaleTool failed", file=setup, trial=trial,
                         hint="open setup_scale.xml in the OpenSim GUI to see its message")

    scale_set = opensim.ScaleSet(str(workdir / "scale_set.xml"))
    factors = {s.getSegmentName(): [float(v) for v in s.getScaleFactors().to_numpy()]
               for s in scale_set if s.getSegmentName() in bodies}
    scaled = opensim.Model(str(workdir / "scaled.osim"))
    scaled.finalizeConnections()
    restored = _restore_markers(scaled, opensim.Model(str(workdir / "scaled_only.osim")), fixed)
    _scale_contact(scaled, generic, factors)
    scaled.finalizeFromProperties()
    scaled.finalizeConnections()
    target = dict(zip(used, static.to_numpy().reshape(len(static), -1, 3).mean(axis=0),
                      strict=True))
    errors = _static_errors(scaled, workdir / "static_pose.mot", target)
    worst = max(errors, key=errors.get)
    total = sum(b.getMass() for b in scaled.getBodySet())
    report = {
        "scale_factors": factors,
        "measurements": {m.name: {"pairs": [list(p) for p in m.pairs], "bodies": m.bodies,
                                  "source": m.source, "factor": _factor(m, factors)}
                         for m in chosen},
        "inherited": inherited,
        "marker_rmse_m": _rms(errors.values()),
        "marker_max_error_m": errors[worst], "marker_max_error_marker": worst,
        "landmark_rmse_m": _rms(e for m, e in errors.items() if m not in movable),
        "marker_errors_m": errors,
        "markers_used": used, "markers_moved": sorted(movable), "markers_dropped": dropped,
        "markers_missing": missing, "markers_restored": restored,
        "total_mass_kg": total, "time_range": list(times), "workdir": str(workdir),
    }
    return scaled, report
