"""initcheck.fix(): in place on nn.Modules and state_dicts; which layers, which scheme, what stays."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import initcheck  # noqa: E402
from initcheck.errors import InitcheckError  # noqa: E402
from initcheck.fix import parse_scheme  # noqa: E402
from initcheck.report import SEVERITY_RANK  # noqa: E402


def mlp(width: int = 128) -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, width), torch.nn.ReLU(), torch.nn.Linear(width, width), torch.nn.ReLU(),
        torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, 10))


def serious(report, names=None):
    return [f for f in report.findings if f.layer is not None and SEVERITY_RANK[f.severity] >= 1
            and (names is None or f.layer in names)]


def snapshot(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


FAULTS = {
    "zeros": lambda w: w.zero_(),
    "nan": lambda w: w.view(-1)[::97].fill_(float("nan")),
    "constant": lambda w: w.fill_(0.01),
    "x10": lambda w: w.mul_(10.0),
    "x0.03": lambda w: w.mul_(0.03),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_planted_fault_in_module_comes_back_clean(fault):
    net = mlp()
    with torch.no_grad():
        FAULTS[fault](net[2].weight)
    before = snapshot(net)
    report = initcheck.check(net)
    assert serious(report, {"2"}), f"the planted fault {fault} is not flagged: {report.findings}"
    changes = initcheck.fix(net, seed=0)
    fixed_layers = {c.layer for c in changes}
    assert "2" in fixed_layers
    after = initcheck.check(net)
    assert not serious(after, fixed_layers), after.findings
    for name, t in net.state_dict().items():
        layer = name.rsplit(".", 1)[0]
        if layer not in fixed_layers:
            assert torch.equal(t, before[name]), f"{name} changed although its layer was not fixed"
    assert torch.all(net[2].bias == 0)
    # auto: He for the ReLU that follows (detected from the graph), std √2/√fan_in
    c = next(c for c in changes if c.tensor == "2.weight")
    assert c.scheme.startswith("he_") and abs(c.after_std / (math.sqrt(2) / math.sqrt(128)) - 1) < 0.05


def test_auto_keeps_uniform_family_and_uses_activation():
    net = mlp(256)
    with torch.no_grad():
        net[2].weight.mul_(10)  # PyTorch's default init is uniform: the fingerprint says so
    changes = initcheck.fix(net, seed=0)
    c = next(c for c in changes if c.tensor == "2.weight")
    assert c.scheme.startswith("he_uniform")
    w = net[2].weight.detach().double().numpy()
    k = ((w - w.mean()) ** 4).mean() / w.var() ** 2 - 3
    assert abs(k + 1.2) < 0.1  # uniform
    assert np.abs(w).max() <= math.sqrt(3) * math.sqrt(2 / 256) + 1e-7


def test_layers_glob_all_and_named_scheme():
    net = mlp()
    before = snapshot(net)
    changes = initcheck.fix(net, layers=["4"], scheme="normal:0.02", seed=1)
    assert {c.tensor for c in changes} == {"4.weight", "4.bias"}
    assert abs(net[4].weight.std().item() - 0.02) < 0.002
    assert torch.equal(net[0].weight, before["0.weight"])
    changes = initcheck.fix(net, all_layers=True, scheme="orthogonal", seed=1)
    assert {c.layer for c in changes} == {"0", "2", "4", "6"}
    sv = np.linalg.svd(net[2].weight.detach().double().numpy(), compute_uv=False)
    assert np.allclose(sv, sv[0], rtol=1e-5)  # orthogonal (times the ReLU gain)
    with pytest.raises(InitcheckError):
        initcheck.fix(net, layers=["nope*"])
    with pytest.raises(InitcheckError):
        parse_scheme("normal:-1")
    with pytest.raises(InitcheckError):
        parse_scheme("kaiming")


def test_seed_reproducible_and_independent_of_selection():
    a, b = mlp(), mlp()
    initcheck.fix(a, layers=["2"], seed=7)
    initcheck.fix(b, layers=["2", "4"], seed=7)
    assert torch.equal(a[2].weight, b[2].weight)
    assert not torch.equal(a[4].weight, b[4].weight)


def test_dry_run_changes_nothing():
    net = mlp()
    with torch.no_grad():
        net[0].weight.zero_()
    before = snapshot(net)
    changes = initcheck.fix(net, seed=0, dry_run=True)
    assert changes and all(c.values is not None for c in changes)
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k])


def test_tied_weights_stay_tied_and_norms_reset():
    class LM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(100, 32)
            self.norm = torch.nn.LayerNorm(32)
            self.head = torch.nn.Linear(32, 100, bias=False)
            self.head.weight = self.emb.weight

        def forward(self, x):
            return self.head(self.norm(self.emb(x)))

    lm = LM()
    with torch.no_grad():
        lm.emb.weight.zero_()
        lm.norm.weight.fill_(float("nan"))
    changes = initcheck.fix(lm, layers=["emb", "norm"], seed=0)
    assert lm.head.weight.data_ptr() == lm.emb.weight.data_ptr()
    assert torch.equal(lm.head.weight, lm.emb.weight) and lm.emb.weight.std() > 0
    assert torch.all(lm.norm.weight == 1) and torch.all(lm.norm.bias == 0)
    emb = next(c for c in changes if c.tensor == "emb.weight")
    assert abs(emb.after_std * math.sqrt(32) - 1) < 0.05  # embeddings: 1/√dim (see reinit docstring)


def test_recurrent_fault_fixed_clean():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(32, 32)
    with torch.no_grad():
        lstm.weight_hh_l0.mul_(30)
    assert serious(initcheck.check(lstm), {"weight_hh_l0"})
    initcheck.fix(lstm, seed=0)
    assert not serious(initcheck.check(lstm)), initcheck.check(lstm).findings


def test_state_dict_in_memory_and_recurrent_attention():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(16, 32)
    mha = torch.nn.MultiheadAttention(32, 4)
    sd = {**{f"rnn.{k}": v for k, v in lstm.state_dict().items()},
          **{f"attn.{k}": v for k, v in mha.state_dict().items()}}
    with torch.no_grad():
        sd["rnn.weight_hh_l0"].zero_()
        sd["attn.in_proj_weight"].fill_(0.5)
    changes = initcheck.fix(sd, seed=0)
    tensors = {c.tensor for c in changes}
    assert {"rnn.weight_hh_l0", "attn.in_proj_weight"} <= tensors
    hh = sd["rnn.weight_hh_l0"].double().numpy()
    assert np.allclose(hh.T @ hh, np.eye(32), atol=1e-5)  # recurrent: orthogonal (4H, H), as Keras does
    ip = sd["attn.in_proj_weight"].double().numpy()
    assert abs(ip.std() - 1 / math.sqrt(32)) < 0.1 / math.sqrt(32)  # Xavier on per-projection fans (32, 32)
