"""The signal-propagation probe on PyTorch models: each rule on a model that has the problem and one that
does not, the figures of docs/probe.md, and that the probe leaves the model exactly as it found it."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import initcheck  # noqa: E402
from initcheck.probe.analysis import trends  # noqa: E402
from initcheck.probe.thresholds import DRIFT_WARN, DRIFT_Z, saturation_thresholds  # noqa: E402

from _probe_nets import PreLNTransformer, mup_mlp, relu_mlp, sp_mlp, tanh_mlp  # noqa: E402


@pytest.fixture(autouse=True)
def one_thread():
    """Small models run faster on one thread, and do not fight a busy machine's other jobs."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def codes(result) -> set[str]:
    return {f.rule for f in result.findings}


def linear_rms(result) -> list[float]:
    return [lp.out_rms for lp in result.measurements.layers if lp.kind == "linear"]


# ------------------------------------------------------------------------------------------ depth drift
def test_default_init_relu_mlp_vanishes_with_the_fix():
    result = initcheck.probe(relu_mlp(depth=32, width=128, bias=False))
    gains = [lp.gain for lp in result.measurements.layers if lp.kind == "linear"]
    # PyTorch's default U(±1/√fan_in): each Linear has gain √(fan_in·Var w) = 1/√3 = 0.577
    assert np.median(gains) == pytest.approx(1 / math.sqrt(3), rel=0.03)
    rms = linear_rms(result)
    per_layer = (rms[-1] / rms[0]) ** (1 / 31)  # the ReLU halves the second moment too: √(1/6) = 0.408
    assert per_layer == pytest.approx(math.sqrt(1 / 6), rel=0.03)
    ic401 = [f for f in result.findings if f.rule == "IC401"]
    assert len(ic401) == 1 and ic401[0].severity == "error"
    assert "scale its weights by 2.4" in ic401[0].fix  # √2 / 0.577 = 2.45: He's gain over the measured one
    assert "IC403" in codes(result)  # the gradient vanishes toward the input the same way


def test_default_init_with_biases_falls_onto_the_bias_floor():
    result = initcheck.probe(relu_mlp(depth=32, width=128))
    rms = linear_rms(result)
    assert rms[-1] / rms[0] < 0.15  # the floor: Var(y) = Var(y)/6 + Var(b) ⇒ rms √(0.4/fan_in) = 0.056
    assert rms[-1] == pytest.approx(math.sqrt(0.4 / 128), rel=0.25)
    assert "IC401" in codes(result)


def test_he_init_relu_mlp_is_flat():
    result = initcheck.probe(relu_mlp(depth=32, width=128, init="he"))
    for trend in trends(result.measurements.layers, "forward"):  # flat within its sampling error
        assert abs(math.log(trend.change)) < DRIFT_Z * trend.log_noise
    assert not codes(result) & {"IC401", "IC402", "IC403", "IC404"}
    gains = [lp.gain for lp in result.measurements.layers if lp.kind == "linear"]
    assert np.median(gains) == pytest.approx(math.sqrt(2), rel=0.03)


def test_batchnorm_mlp_forward_is_flat():
    result = initcheck.probe(relu_mlp(depth=32, width=128, norm=True))
    rms = linear_rms(result)
    assert max(rms[1:]) / min(rms[1:]) < 1.3
    assert not codes(result) & {"IC401", "IC402"}


def test_too_large_weights_explode_forward_and_backward():
    model = relu_mlp(depth=16, width=128, init="he")
    with torch.no_grad():
        for m in model:
            if isinstance(m, torch.nn.Linear):
                m.weight *= 1.5
    result = initcheck.probe(model)
    assert {"IC402", "IC404"} <= codes(result)


def test_pre_ln_transformer_residual_stream_grows_without_scaling_and_not_with_it():
    plain = initcheck.probe(PreLNTransformer(blocks=24, d=64))
    scaled = initcheck.probe(PreLNTransformer(blocks=24, d=64, residual_scaling=True))

    def stream(result):
        return [lp.in_rms for lp in result.measurements.layers if lp.name.endswith(".ln_1")]

    assert stream(plain)[-1] / stream(plain)[0] > DRIFT_WARN
    assert stream(scaled)[-1] / stream(scaled)[0] < 1.2
    grown = [f for f in plain.findings if f.rule == "IC402" and "ln_" in f.message]
    assert grown and "1/√(2·blocks)" in grown[0].fix
    assert "IC402" not in codes(scaled)


# ------------------------------------------------------------------------------- units and attention
def test_saturated_tanh_is_flagged_and_xavier_is_not():
    assert "IC405" in codes(initcheck.probe(tanh_mlp(gain=5.0)))
    assert "IC405" not in codes(initcheck.probe(tanh_mlp(gain=1.0)))


def test_saturation_thresholds_are_the_gaussian_tails_at_the_static_edges():
    warn, error = saturation_thresholds("tanh")
    assert warn == pytest.approx(0.169, abs=0.002) and error == pytest.approx(0.69, abs=0.01)


def test_dead_relus_are_flagged():
    model = relu_mlp(depth=4, width=128, init="he")
    with torch.no_grad():
        model[2].bias.fill_(-3.0)
    result = initcheck.probe(model)
    dead = [f for f in result.findings if f.rule == "IC406"]
    assert dead and dead[0].layer == "2" and dead[0].severity == "error"
    assert "IC406" not in codes(initcheck.probe(relu_mlp(depth=4, width=128, init="he")))


def test_attention_collapse_is_flagged_and_default_attention_is_not():
    collapsed = initcheck.probe(PreLNTransformer(blocks=2, d=32, qk_gain=30.0))
    assert "IC407" in codes(collapsed)
    assert min(a.entropy for a in collapsed.measurements.attention) < 0.5
    healthy = initcheck.probe(PreLNTransformer(blocks=2, d=32))
    assert healthy.measurements.attention and min(a.entropy for a in healthy.measurements.attention) > 0.9
    assert "IC407" not in codes(healthy)


# --------------------------------------------------------------------------------------- coord check
def test_mup_mlp_passes_the_coord_check_and_sp_fails_on_its_readout():
    widths = [64, 128, 256, 512]  # mup comes with the dev install (Makefile): no skip
    mu = initcheck.probe.coord_check(mup_mlp, widths)
    assert not mu.findings
    assert all(abs(c.delta_slope) < 0.25 for c in mu.measurements.layers)
    sp = initcheck.probe.coord_check(sp_mlp, widths)
    readout = [f for f in sp.findings if f.layer == "readout"]
    assert readout and readout[0].severity == "error" and "grows" in readout[0].message


# ------------------------------------------------------------------------------------ nothing changes
def test_weights_buffers_grads_and_modes_are_restored_bit_identical():
    model = relu_mlp(depth=4, width=32, norm=True)
    model.train()
    model[0].weight.grad = torch.full_like(model[0].weight, 0.25)
    model[3].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    initcheck.probe(model)
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k in before:
        assert torch.equal(before[k], after[k]), k  # BatchNorm running stats and counters included
    assert torch.equal(model[0].weight.grad, torch.full_like(model[0].weight, 0.25))
    assert model[3].weight.grad is None and not model[3].weight.requires_grad
    assert all(m.training for m in model.modules())


def test_static_prediction_stands_beside_the_measurement():
    result = initcheck.probe(relu_mlp(depth=4, width=128, init="he"))
    for lp in result.measurements.layers:
        assert lp.predicted_gain == pytest.approx(lp.gain, rel=0.1)
        assert lp.sound_gain == pytest.approx(math.sqrt(2), rel=0.01)


def test_user_data_is_the_input(tmp_path):
    x = np.random.default_rng(0).standard_normal((32, 128)).astype(np.float32) * 3.0
    np.save(tmp_path / "x.npy", x)
    result = initcheck.probe(relu_mlp(depth=2, width=128, init="he"), data=str(tmp_path / "x.npy"))
    assert result.measurements.input_shape == (32, 128)
    assert result.measurements.layers[0].in_rms == pytest.approx(float(np.sqrt((x ** 2).mean())), rel=1e-5)


# --------------------------------------------------------------------------------- other architectures
def test_conv_net_units_are_channels():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
                                torch.nn.Conv2d(16, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
                                torch.nn.Linear(16 * 16 * 16, 10))
    with torch.no_grad():
        model[3].bias[:8] = -100.0  # half the channels of the second conv can never fire
    result = initcheck.probe(model, input_shape=(4, 3, 16, 16))
    conv = result.measurements.layer("3")
    assert conv.units == 16 and conv.samples == 4 * 16 * 16 and conv.dead_fraction == pytest.approx(0.5)
    assert any(f.rule == "IC406" and f.layer == "3" for f in result.findings)


def test_hugging_face_gpt2_attention_is_observed_and_restored():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=64,
                                                                 vocab_size=100)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = initcheck.probe(model)
    assert result.measurements.input_kind == "synthetic token ids"
    assert len(result.measurements.attention) == 2
    assert all(0.9 < a.entropy <= 1.0 for a in result.measurements.attention)  # std 0.02: near uniform
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_a_plain_check_is_untouched_by_the_probe_rules():
    import initcheck.rules.probe  # noqa: F401

    report = initcheck.check(relu_mlp(depth=32, width=64, bias=False))
    assert not [f for f in report.findings if f.rule.startswith("IC4")]


def test_gpt2_depth_scaled_branches_grow_the_stream_only_at_info():
    """Stock GPT-2 (std 0.02, c_proj 0.02/√(2L)): the stream grows from its small embeddings, bounded in
    depth (Σ (gain/sound)² over the branch ends ≈ 0.2), so IC402 is info; c_proj at plain 0.02 is not."""
    transformers = pytest.importorskip("transformers")
    from initcheck.rules.probe import branch_budget

    def gpt2(scaled: bool):
        torch.manual_seed(0)
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(
            n_layer=12, n_embd=256, n_head=4, n_positions=64, vocab_size=500)).eval()
        if not scaled:
            with torch.no_grad():
                for name, p in model.named_parameters():
                    if name.endswith("c_proj.weight"):
                        p.normal_(0, 0.02)
        return initcheck.probe(model)

    stock, plain = gpt2(True), gpt2(False)
    assert branch_budget(stock.report.model)[0] < 0.5 < 2.5 < branch_budget(plain.report.model)[0]
    assert {f.severity for f in stock.findings if f.rule == "IC402"} <= {"info"}
    assert any(f.rule == "IC402" and f.severity != "info" for f in plain.findings)
