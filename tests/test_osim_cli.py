"""`python -m osim export-tree`: the JSON the torch dynamics read, from the command line."""
import subprocess
import sys


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "osim", *args], capture_output=True, text=True,
                          cwd=cwd)


def test_export_tree_round_trips_into_torch(tmp_path):
    import torch

    from models.dynamics import Multibody
    from osim.builtin_model import COORDINATE_NAMES

    built = _cli("build-model", "--height", "1.8", "--mass", "80", "--sex", "M", "--out",
                 "m.osim", cwd=tmp_path)
    assert built.returncode == 0, built.stderr
    exported = _cli("export-tree", "m.osim", "--out", "tree.json", cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    mb = Multibody.from_json(tmp_path / "tree.json", dtype=torch.float64)
    assert tuple(mb.coordinate_names) == COORDINATE_NAMES
    assert len(mb.marker_names) == 48


def test_export_tree_of_a_missing_model_fails_cleanly(tmp_path):
    result = _cli("export-tree", "nope.osim", "--out", "tree.json", cwd=tmp_path)
    assert result.returncode != 0
    assert "nope.osim" in result.stderr
    assert not (tmp_path / "tree.json").exists()
