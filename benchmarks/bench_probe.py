"""Benchmark: the probe of GPT-2 small (124M parameters, random init from GPT2Config) against one plain
forward-backward pass of the same model on the same input and cotangent.

    .venv/bin/python benchmarks/bench_probe.py [--repeats 5] [--threads N] [--batch 8 --seq 32]
    .venv/bin/python benchmarks/bench_probe.py --figures     # the figures of docs/probe.md instead

Reports the median of ``--repeats`` runs of (a) one forward-backward pass with no hooks, (b) the probe's
measuring pass (``ProbeResult.seconds``: hooks, activation/attention statistics, the backward pass, weight
statistics, state restored) and (c) the whole ``initcheck.probe()`` call (load, static judgement, the
pass, rules). The issue's target is (b)/(a) < 3. Runs alternate (a) and (b) so that machine load hits
both alike. Nothing is downloaded: the model is built from its config.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--layers", type=int, default=12, help="GPT-2 blocks (12: GPT-2 small, 124M)")
    ap.add_argument("--figures", action="store_true", help="print the measured figures of docs/probe.md")
    args = ap.parse_args(argv)
    if args.figures:
        return figures()

    import torch

    # a torchvision wheel that does not match torch breaks transformers' lazy imports; GPT-2 needs none of it
    sys.modules.setdefault("torchvision", None)
    from transformers import GPT2Config, GPT2LMHeadModel

    import initcheck
    from initcheck.frameworks.torch.probe import run_pass
    from initcheck.load import load
    from initcheck.probe.inputs import draw_cotangent, draw_input

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(n_layer=args.layers)).eval()
    params = sum(p.numel() for p in model.parameters())
    shape = (args.batch, args.seq)
    ids = torch.as_tensor(draw_input(shape, 0, vocab=model.config.vocab_size))

    def plain() -> float:
        start = time.perf_counter()
        out = model(ids).logits
        out.backward(torch.as_tensor(draw_cotangent(tuple(out.shape), 0)))
        elapsed = time.perf_counter() - start
        model.zero_grad(set_to_none=True)
        return elapsed

    loaded = load(model)
    probe_times, plain_times = [], []
    plain()  # warm-up (allocator, kernels)
    run_pass(model, loaded, (ids,), {}, seed=0, lr=1e-3)
    for _ in range(args.repeats):
        plain_times.append(plain())
        start = time.perf_counter()
        run_pass(model, loaded, (ids,), {}, seed=0, lr=1e-3)
        probe_times.append(time.perf_counter() - start)
    start = time.perf_counter()
    report = initcheck.probe(model)
    whole = time.perf_counter() - start
    a, b = statistics.median(plain_times), statistics.median(probe_times)
    print(f"GPT-2 ({args.layers} blocks, {params / 1e6:.1f}M parameters), input {shape}, "
          f"{torch.get_num_threads()} threads, {args.repeats} repeats")
    print(f"  forward+backward, no hooks : {a:.3f} s (median; min {min(plain_times):.3f})")
    print(f"  probe's measuring pass     : {b:.3f} s (median; min {min(probe_times):.3f})  ratio {b / a:.2f}")
    print(f"  initcheck.probe() in all   : {whole:.3f} s (load, static judgement, pass, rules); "
          f"pass alone {report.measurements.seconds:.3f} s")
    print(f"  findings: {sorted({(f.rule, f.severity) for f in report.findings}) or 'none'}; "
          f"attention calls seen: {len(report.measurements.attention)}")
    return 0 if b / a < 3 else 1


def _trend(result, quantity: str, group: str):
    from initcheck.probe.analysis import trends

    return next(t for t in trends(result.measurements.layers, quantity) if t.group == group)


def figures() -> int:
    """The done-when figures: ReLU MLPs under three inits, pre-LN transformers, the coord check, GPT-2."""
    import os
    import statistics

    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    from _probe_nets import PreLNTransformer, mup_mlp, relu_mlp, sp_mlp

    import initcheck

    torch.set_num_threads(1)
    for label, model in [("default init, no biases", relu_mlp(bias=False)), ("default init", relu_mlp()),
                         ("He", relu_mlp(init="he")), ("default init + BatchNorm", relu_mlp(norm=True))]:
        r = initcheck.probe(model)
        lin = [lp for lp in r.measurements.layers if lp.kind == "linear"]
        fwd, bwd = _trend(r, "forward", "# (linear)"), _trend(r, "backward", "# (linear)")
        print(f"32×256 ReLU MLP, {label}: median Linear gain {statistics.median(lp.gain for lp in lin):.3f} "
              f"(predicted {statistics.median(lp.predicted_gain for lp in lin):.3f}, sound "
              f"{lin[0].sound_gain:.3f}); output RMS {lin[0].out_rms:.3g} → {lin[-1].out_rms:.3g} "
              f"(G ×{fwd.change:.3g}, {abs(math.log(fwd.change)) / fwd.log_noise:.1f} s.e.; per layer "
              f"×{(lin[-1].out_rms / lin[0].out_rms) ** (1 / 31):.3f}); gradient G ×{bwd.change:.3g}; "
              f"findings {sorted({(f.rule, f.severity) for f in r.findings})}")
        fix = next((f.fix for f in r.findings if f.rule == "IC401"), None)
        if fix:
            print(f"    fix: {fix}")
    for scaled in (False, True):
        r = initcheck.probe(PreLNTransformer(blocks=24, d=64, residual_scaling=scaled))
        t = _trend(r, "forward", "h.#.ln (layernorm)")
        print(f"24-block pre-LN transformer, {'σ/√(2L) on the branches' if scaled else 'no residual scaling'}: "
              f"residual stream {t.values[0]:.3f} → {t.values[-1]:.3f} (G ×{t.change:.3f}); findings "
              f"{sorted({(f.rule, f.severity) for f in r.findings if 'ln' in f.message})}")
    for factory in (mup_mlp, sp_mlp):
        c = initcheck.probe.coord_check(factory, [64, 128, 256, 512])
        slopes = ", ".join(f"{la.name} Δ {la.delta_slope:+.2f} init {la.init_slope:+.2f}"
                           for la in c.measurements.layers)
        print(f"coord check {factory.__name__} 64–512: {slopes}; findings "
              f"{sorted({(f.layer, f.severity) for f in c.findings})}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
