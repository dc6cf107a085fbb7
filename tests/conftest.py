"""Shared test fixtures: where the read-only reference data lives."""
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_file(*parts: str) -> Path:
    """Path to a file under ../shared/data, skipping the test with a clear message if absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"reference data not found: {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture
def walking_dir() -> Path:
    """OpenSim's example3DWalking folder (real trial, scaled model, reference ID)."""
    return shared_file("opensim-core", "example3DWalking")


@pytest.fixture
def c3d_dir() -> Path:
    """OpenSim's walking5.c3d and its own conversion of it."""
    return shared_file("opensim-core", "c3d")


# Joints the tracking tests weld, as luigi.cfg's [TrackMoco] weld_joints does.
WELD = ("mtp_r", "mtp_l", "acromial_r", "acromial_l", "elbow_r", "elbow_l", "radioulnar_r",
        "radioulnar_l", "radius_hand_r", "radius_hand_l")


def standing_trial(folder: Path, seconds: float, height_m: float = 1.75, mass_kg: float = 70.0):
    """The built-in model (written to folder/model.osim) and an IK-like STO of it standing still
    in its default pose for `seconds` at 100 Hz (folder/ik.sto); returns both paths."""
    import numpy as np
    import pandas as pd

    from osim.builtin_model import build_model, write_model
    from pipeline.opensim_files import write_sto

    model = build_model(height_m, mass_kg, "F")
    model_path = write_model(model, folder / "model.osim")
    state = model.initSystem()
    times = np.linspace(0, seconds, int(round(seconds * 100)) + 1)
    table = pd.DataFrame({c.getName(): np.full(len(times), c.getValue(state))
                          for c in model.getCoordinateSet()}, index=pd.Index(times, name="time"))
    write_sto(folder / "ik.sto", table)
    return model_path, folder / "ik.sto"


def standing_casadi_spec(folder: Path, name: str, *, extras: dict | None = None,
                         **settings) -> Path:
    """A CasADi engine spec of the built-in model standing for 0.3 s (mesh 0.1 s, arms and toes
    welded; the model, its IK-like STO and its exported tree written into `folder` once),
    with `settings` overriding TrackSettings and `extras` added (e.g. a spec key); written to
    folder/<name>.json, solving into folder/<name>."""
    import json
    from dataclasses import asdict, replace

    from osim.export_tree import write_tree
    from osim.moco_track import TrackSettings

    tree = folder / "tree.json"
    if not tree.exists():
        model_path, _ = standing_trial(folder, 0.3)
        write_tree(model_path, tree)
    resolved = replace(TrackSettings(), **{"mesh_interval": 0.1, "weld_joints": WELD,
                                           "engine": "casadi", **settings})
    spec = {"model": str(folder / "model.osim"), "coordinates": str(folder / "ik.sto"),
            "t0": 0.0, "t1": 0.3, "workdir": str(folder / name), "settings": asdict(resolved),
            "tree": str(tree), "engine": "casadi", **(extras or {})}
    path = folder / f"{name}.json"
    path.write_text(json.dumps(spec))
    return path


@contextmanager
def luigi_paths_set(**folders):
    """Luigi's [paths] (raw, warehouse, artifacts) pointed at `folders` for the block, restored
    afterwards (tasks read them from the process-wide configuration)."""
    import luigi

    config = luigi.configuration.get_config()
    saved = {key: config.get("paths", key, None) for key in folders}
    for key, folder in folders.items():
        config.set("paths", key, str(folder))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                config.remove_option("paths", key)
            else:
                config.set("paths", key, value)


def check_standing_solution(workdir: Path, mass_kg: float) -> tuple:
    """What both engines must show for a still, symmetric stance (their kinematics.sto and
    kinetics.sto in `workdir`): the feet carry the body weight, each about half, the pelvis
    residual does not; the CoP on the floor; the knees straight. Returns (kinematics, kinetics)
    for the engine-specific checks."""
    import numpy as np

    from pipeline.opensim_files import read_sto

    kinetics = read_sto(Path(workdir) / "kinetics.sto")
    weight = mass_kg * 9.80665
    vertical = kinetics["ground_force_r_vy"] + kinetics["ground_force_l_vy"]
    np.testing.assert_allclose(vertical / weight, 1.0, atol=0.02)
    np.testing.assert_allclose(kinetics["ground_force_r_vy"] / weight, 0.5, atol=0.05)
    assert np.abs(kinetics["pelvis_ty_force"]).max() < 0.01 * weight
    assert np.all(np.abs(kinetics["ground_force_r_py"]) < 1e-9)
    kinematics = read_sto(Path(workdir) / "kinematics.sto")
    assert {"knee_angle_r", "knee_angle_r_speed", "knee_angle_r_accel"} <= set(kinematics)
    assert np.degrees(np.abs(kinematics["knee_angle_r"]).max()) < 1.0
    return kinematics, kinetics
