"""Weight averaging (TrainConfig.weight_average): the checkpoint's "model" is the exponential
moving average of the weights over optimizer steps, "trained" the raw weights, and a resumed
run ends with both exactly as an uninterrupted one."""
import pytest
import torch
from fake_cohort import cached_warehouse

from models.config import make_config
from models.data import load_cohort
from models.predict import Predictor
from models.training import _update_average, fit


def test_update_average_is_an_exponential_moving_average():
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.fill_(2.0)
        net.bias.fill_(-4.0)
    average = {k: torch.zeros_like(v) for k, v in net.state_dict().items()}
    _update_average(average, net, 0.75)
    assert torch.allclose(average["weight"], torch.full((2, 3), 0.5))
    _update_average(average, net, 0.75)   # 0.75 * 0.5 + 0.25 * 2
    assert torch.allclose(average["weight"], torch.full((2, 3), 0.875))
    assert torch.allclose(average["bias"], torch.full((2,), -1.75))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return cached_warehouse(tmp_path_factory.mktemp("average"))


def test_averaged_weights_are_saved_used_and_resumed_exactly(warehouse, tmp_path):
    root, bodies = warehouse
    cohort = load_cohort(root)
    cfg = make_config("tiny", seed=1, epochs=2, fd_frames=1, weight_average=0.9)
    fit(cfg, cohort, bodies, tmp_path / "a.pt")
    fit(cfg, cohort, bodies, tmp_path / "b.pt", stop_after=1)
    fit(cfg, cohort, bodies, tmp_path / "b.pt")
    a = torch.load(tmp_path / "a.pt", weights_only=False)
    b = torch.load(tmp_path / "b.pt", weights_only=False)
    for key in ("model", "trained"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    # The average lags the raw weights, and prediction loads the average.
    assert any(not torch.equal(a["model"][k], a["trained"][k]) for k in a["model"])
    net = Predictor.load(tmp_path / "a.pt").net
    for k, v in net.state_dict().items():
        assert torch.equal(v, a["model"][k]), k
