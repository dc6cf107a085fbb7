"""`python -m pipeline inspect|convert`, run as lab staff run it; OpenSim reads what it writes."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import opensim
import pytest

from pipeline.c3d import read_c3d

REPO = Path(__file__).resolve().parents[1]


def _run(*args: str):
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def walking5(c3d_dir):
    return c3d_dir / "walking5.c3d"


def test_convert_writes_files_opensim_reads(walking5, tmp_path):
    out = tmp_path / "out"
    result = _run("convert", str(walking5), "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in out.iterdir()) == ["walking5.trc", "walking5_grf.mot"]

    markers = opensim.TimeSeriesTableVec3(str(out / "walking5.trc"))
    assert markers.getNumRows() == 1103 and markers.getNumColumns() == 40
    assert markers.getTableMetaDataString("Units") == "mm"
    rec = read_c3d(walking5)
    row = 600
    rsho = markers.getDependentColumn("C7")[row]
    lab = rec.markers.loc[rec.markers.index[row], ["C7_x", "C7_y", "C7_z"]].to_numpy() * 1e3
    # OpenSim frame, Y up: (x, y, z)_lab -> (x, z, -y).
    np.testing.assert_allclose([rsho[0], rsho[1], rsho[2]], [lab[0], lab[2], -lab[1]],
                               atol=1e-6)

    grf = opensim.TimeSeriesTable(str(out / "walking5_grf.mot"))
    labels = list(grf.getColumnLabels())
    assert labels[:3] == ["ground_force_r_vx", "ground_force_r_vy", "ground_force_r_vz"]
    assert labels[9:12] == ["ground_force_l_vx", "ground_force_l_vy", "ground_force_l_vz"]
    assert len(labels) == 18 and grf.getNumRows() == 8824  # the analog rate, 2000 Hz
    vy = grf.getDependentColumn("ground_force_l_vy").to_numpy()
    plate1 = rec.plates[0].vertical_force
    on = plate1 >= 20.0
    # The left foot stood on plate 1: same vertical force while loaded, 0 elsewhere.
    np.testing.assert_allclose(vy[on], plate1[on], atol=1e-6)
    assert np.abs(vy[plate1 < 0]).max() == 0.0
    assert np.isfinite(grf.getMatrix().to_numpy()).all()  # no NaN for OpenSim to choke on


def test_convert_per_plate_columns(walking5, tmp_path):
    result = _run("convert", str(walking5), "--out", str(tmp_path), "--columns", "plate",
                  "--up-axis", "z")
    assert result.returncode == 0, result.stderr
    grf = opensim.TimeSeriesTable(str(tmp_path / "walking5_grf.mot"))
    labels = list(grf.getColumnLabels())
    assert labels[:4] == ["ground_force_vx", "ground_force_vy", "ground_force_vz",
                          "ground_force_px"]
    assert "1_ground_force_vy" in labels and "1_ground_torque_y" in labels
    peak = grf.getDependentColumn("1_ground_force_vy").to_numpy().max()
    assert peak == pytest.approx(read_c3d(walking5).plates[1].vertical_force.max())


def test_inspect_summarises_the_trial(walking5):
    result = _run("inspect", str(walking5))
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "markers: 40 at 250 Hz, 1103 frames, 4.408 s" in text
    assert "lab up axis z (detected" in text
    assert "force plates: 2 at 2000 Hz" in text
    assert "plate 1: type 2" in text and "plate 2: type 2" in text
    assert "loaded 1.962-2.473 s -> left foot" in text
    assert "loaded 2.381-2.970 s -> right foot" in text
    c7 = next(line for line in text.splitlines() if line.strip().startswith("C7 "))
    assert c7.split()[1:4] == ["334", "2", "190"]  # missing frames, gaps, longest gap


def test_bad_input_fails_cleanly(walking5, tmp_path):
    bad = tmp_path / "broken.c3d"
    bad.write_bytes(walking5.read_bytes()[:5000])
    out = tmp_path / "out"
    result = _run("convert", str(bad), "--out", str(out))
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.c3d" in lines[0] and "truncated" in lines[0]
    assert not out.exists() or not any(out.iterdir())  # nothing written, no temp left
    missing = _run("inspect", str(tmp_path / "absent.trc"))
    assert missing.returncode != 0 and "file not found" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
