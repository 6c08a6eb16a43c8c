"""Benchmark: the probe of GPT-2 small (124M parameters, random init from GPT2Config) against one plain
forward-backward pass of the same model on the same input and cotangent.

    .venv/bin/python benchmarks/bench_probe.py [--repeats 5] [--threads N] [--batch 8 --seq 32]

Reports the median of ``--repeats`` runs of (a) one forward-backward pass with no hooks, (b) the probe's
measuring pass (``ProbeResult.seconds``: hooks, activation/attention statistics, the backward pass, weight
statistics, state restored) and (c) the whole ``initcheck.probe()`` call (load, static judgement, the
pass, rules). The issue's target is (b)/(a) < 3. Runs alternate (a) and (b) so that machine load hits
both alike. Nothing is downloaded: the model is built from its config.
"""

from __future__ import annotations

import argparse
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
    args = ap.parse_args(argv)

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
    print(f"  findings: {sorted({f.rule for f in report.findings}) or 'none'}; "
          f"attention calls seen: {len(report.measurements.attention)}")
    return 0 if b / a < 3 else 1


if __name__ == "__main__":
    sys.exit(main())
