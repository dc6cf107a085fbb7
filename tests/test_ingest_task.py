"""IngestTrial through Luigi on a real C3D with force plates (OpenSim's walking5.c3d)."""
import json
import shutil

import luigi
import numpy as np

from warehouse import catalog, store


def test_ingest_writes_markers_and_measured_grf(c3d_dir, tmp_path):
    import tasks

    subject = tmp_path / "raw" / "P01"
    subject.mkdir(parents=True)
    shutil.copy(c3d_dir / "walking5.c3d", subject / "walk_01.c3d")
    (subject / "subject.json").write_text(json.dumps(
        {"mass_kg": 72.0, "height_m": 1.78, "sex": "M", "static_trial": "walk_01"}))
    config = luigi.configuration.get_config()
    config.set("paths", "raw", str(tmp_path / "raw"))
    config.set("paths", "warehouse", str(tmp_path / "warehouse"))
    config.set("paths", "artifacts", str(tmp_path / "artifacts"))
    result = luigi.build([tasks.IngestRaw()], local_scheduler=True, log_level="WARNING",
                         detailed_summary=True)
    assert result.status.name == "SUCCESS", result.summary_text

    markers = store.leaf_path(tmp_path / "warehouse", "markers", "P01", "walk_01")
    grf = store.leaf_path(tmp_path / "warehouse", "grf_measured", "P01", "walk_01")
    marker_table, provenance = store.read_leaf(markers)
    grf_table, _ = store.read_leaf(grf)
    assert provenance["source"].endswith("walk_01.c3d") and len(provenance["source_sha256"]) == 64
    assert store.units_of(markers)["time"] == "s"
    assert set(store.units_of(markers).values()) == {"s", "m"}
    assert store.units_of(grf)["ground_force_r_vy"] == "N"
    assert store.units_of(grf)["ground_force_l_px"] == "m"
    # 250 Hz markers; GRF resampled to the same times; Y up: the loaded foot pushes up
    assert np.allclose(np.diff(marker_table.index), 1 / 250)
    np.testing.assert_allclose(grf_table.index, marker_table.index)
    assert grf_table["ground_force_r_vy"].max() > 500 and grf_table["ground_force_l_vy"].max() > 500
    assert np.nanmax(marker_table.filter(like="_y")) < 2.0   # metres, up
    trials = catalog.read_catalog(tmp_path / "warehouse", "trials")
    assert trials.iloc[0]["has_grf"] and trials.iloc[0]["activity"] == "walking"
