"""Training MonoMSK: the FD layer against the dynamics that made the data, a gradient step
through it, exact resume after an interruption, and TrainModel end to end (preset "tiny")."""
import json

import luigi
import pandas as pd
import pytest
import torch
from conftest import luigi_paths_set
from fake_cohort import cached_warehouse

from models.config import make_config
from models.data import load_cohort
from models.layers import AnatomicalFK, ForwardDynamicsLayer
from models.training import fit


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return cached_warehouse(tmp_path_factory.mktemp("training"))


def _contact(trial) -> torch.Tensor:
    return torch.cat([torch.tensor(trial.grf), torch.tensor(trial.cop),
                      torch.tensor(trial.free_torque)[..., None]], -1)


def test_fd_layer_returns_the_accelerations_that_made_the_torques(warehouse):
    root, bodies = warehouse
    cohort = load_cohort(root)
    for trial in cohort.trials:
        fd = ForwardDynamicsLayer(bodies[trial.subject], cohort.coordinate_names)
        qdd = fd.accelerations(torch.tensor(trial.q), torch.tensor(trial.qd),
                               torch.tensor(trial.tau), _contact(trial))
        assert (qdd - torch.tensor(trial.qdd)).abs().max() < 1e-8
    # FK: landmarks on bones plus joint centres; the pelvis origin is pelvis_t{x,y,z}.
    fk = AnatomicalFK(bodies["P01"], cohort.coordinate_names)
    pts = fk(torch.tensor(cohort.trials[0].q[:3]))
    assert pts.shape == (3, len(fk.point_names), 3)
    pelvis = fk.point_names.index("pelvis_origin")
    q = cohort.trials[0].q[:3]
    cols = [cohort.coordinate_names.index(c) for c in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
    assert torch.allclose(pts[:, pelvis], torch.tensor(q[:, cols]), atol=1e-12)


def test_a_gradient_step_through_the_fd_layer_reduces_lq(warehouse):
    root, bodies = warehouse
    cohort = load_cohort(root)
    trial = cohort.trials[0]
    fd = ForwardDynamicsLayer(bodies[trial.subject], cohort.coordinate_names)
    q, qd = torch.tensor(trial.q), torch.tensor(trial.qd)
    tau = (torch.tensor(trial.tau) * 0.8).requires_grad_(True)   # a wrong guess of τ
    contact = _contact(trial)

    def lq():
        q_next, _, _ = fd.single_frame(q[:-1], qd[:-1], tau[:-1], contact[:-1], 0.01)
        return ((q_next - q[1:]) ** 2).mean()

    before = lq()
    before.backward()
    with torch.no_grad():
        # Plain gradient descent, step sized to a tenth of the first-order decrease.
        tau -= 0.1 * before / tau.grad.pow(2).sum() * tau.grad
    after = lq()
    assert after < 0.95 * before


def _state(path):
    return torch.load(path, weights_only=False)


def test_resumed_run_ends_with_the_same_weights(warehouse, tmp_path):
    root, bodies = warehouse
    cohort = load_cohort(root)
    cfg = make_config("tiny", seed=3, epochs=2, fd_frames=1)
    full = fit(cfg, cohort, bodies, tmp_path / "a.pt")
    assert full["complete"] and full["epochs_done"] == 2
    part = fit(cfg, cohort, bodies, tmp_path / "b.pt", stop_after=1)
    assert not part["complete"] and _state(tmp_path / "b.pt")["epoch"] == 1
    resumed = fit(cfg, cohort, bodies, tmp_path / "b.pt")
    assert resumed["complete"]
    a, b = _state(tmp_path / "a.pt"), _state(tmp_path / "b.pt")
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    assert [r["loss"] for r in a["metrics"]] == [r["loss"] for r in b["metrics"]]
    phases = [r["phase"] for r in a["metrics"] if r["split"] == "train"]
    assert phases == ["gt_embed", "pred_embed"]  # resumed into the second phase


@pytest.fixture
def luigi_paths(warehouse, tmp_path):
    with luigi_paths_set(warehouse=warehouse[0], artifacts=tmp_path / "artifacts"):
        yield tmp_path / "artifacts"


def test_train_model_tiny_end_to_end(luigi_paths):
    from tasks.train import TrainModel

    task = TrainModel(run_name="t1", preset="tiny", output="multi", epochs=2,
                      losses=["lambda", "tau"])  # no FD: keeps the test quick
    assert task.output_mode == "multi"
    assert luigi.build([task], local_scheduler=True, log_level="ERROR")
    run = json.loads(open(task.output().path).read())
    folder = task.folder()
    assert folder.parent.name == "t1" and (folder / "checkpoint.pt").exists()
    assert run["config"]["output"] == "multi" and run["config"]["epochs_gt"] == 1
    assert set(run["split"]) == {"train", "val", "test"}
    assert sorted(sum(run["split"].values(), [])) == ["P01", "P02", "P03"]
    metrics = pd.read_parquet(folder / "metrics.parquet")
    assert list(metrics.columns[:3]) == ["epoch", "phase", "split"]
    for col in ("loss", "loss_lambda", "loss_tau", "loss_vel", "loss_acc", "lr", "seconds"):
        assert col in metrics.columns and metrics[col].notna().all(), col
    assert metrics["loss_q"].isna().all() and metrics["loss_J"].isna().all()  # switched off
    assert len(metrics) == 4 and set(metrics["split"]) == {"train", "val"}
    assert list(metrics["phase"][::2]) == ["gt_embed", "pred_embed"]
    # Another setting, another folder; the same settings are complete already.
    assert TrainModel(run_name="t1", preset="tiny", epochs=2).folder() != folder
    assert TrainModel(run_name="t1", preset="tiny", output="multi", epochs=2,
                      losses=["lambda", "tau"]).complete()
