"""Statistics of a torch tensor computed where it lives (a GPU), with torch ops; only results are copied.

For ``initcheck.check(model)`` during training: parameters on an accelerator are not moved to the host.
Per chunk of whole units (at most ``CHUNK_ELEMENTS`` values, so device memory stays bounded), widened to
float64 on the device: counts (finite, NaN, Inf, zeros, subnormals, values at the extremes), min/max and
the central sums M2..M4 about the chunk's mean (two passes over the chunk, on the device; an exact
power-of-two scale for huge or tiny spreads), merged on the host with the same Chan/Pébay update as the
numpy pass. Per unit: mean, std, min and max per row and two exact 64-bit row hashes (wrap-around
integer arithmetic on the bits) for duplicates, and the Gram sample. Each chunk sends back a few
scalars and per-unit vectors, never the values. On CPU tensors the result agrees with the numpy pass,
the reference (tests/test_speed_device.py).
"""

from __future__ import annotations

import math

import numpy as np

from ...errors import InitcheckError
from ...stats import GRAM_SAMPLE, SMALLEST_NORMAL, TAIL_RMS, TensorStats, _Moments, sample_columns

CHUNK_ELEMENTS = 1 << 26  # values per device chunk: 512 MB of float64 temporaries at most

_HASH_SEED = 0x9E3779B97F4A7C15


def refuse_meta(module) -> None:
    """A model on the meta device has shapes but no values: say so instead of reporting nothing."""
    for name, p in module.named_parameters():
        if p.is_meta:
            raise InitcheckError(f"parameter {name!r} is on the meta device: there are no values to check "
                                 f"(materialize the model first, e.g. model.to_empty(device=...) and initialize it)")


def _row_mult(torch, n: int, device) -> tuple:
    rng = np.random.default_rng(_HASH_SEED)
    m = rng.integers(1, 2**62, size=(2, n), dtype=np.int64) * 2 + 1
    return torch.as_tensor(m[0], device=device), torch.as_tensor(m[1], device=device)


def device_stats(t, per_unit: bool, unit_axis: int = 0) -> TensorStats:
    """:class:`~initcheck.stats.TensorStats` of torch tensor ``t`` computed on ``t.device``."""
    import torch

    if t.is_meta:
        raise InitcheckError("tensor is on the meta device: there are no values to check")
    t = t.detach()
    name = str(t.dtype).replace("torch.", "")
    tiny = SMALLEST_NORMAL.get(name, SMALLEST_NORMAL["float64"])
    if t.dim() == 0:
        t = t.reshape(1)
    if t.dim() >= 2 and per_unit:
        m = torch.movedim(t, unit_axis % t.dim(), 0).reshape(t.shape[unit_axis % t.dim()], -1)
    else:
        per_unit = False
        m = t.reshape(1, -1) if t.dim() >= 2 else t.reshape(-1, 1)
    units, per = m.shape
    mom = _Moments()
    counts = {"nan": 0, "inf": 0, "zeros": 0, "subnormal": 0}
    lo, hi, lo_n, hi_n = math.inf, -math.inf, 0, 0
    row_mean, row_std, row_const, row_bad, h1s, h2s = [], [], [], [], [], []
    gram_rows, col_gram = [], None
    mode = "off"
    if per_unit and per > 1 and units > 1:
        mode = "rows" if units <= per else "cols"
    picks = np.unique(np.linspace(0, units - 1, min(GRAM_SAMPLE, units)).round().astype(np.int64))
    cols = torch.as_tensor(np.arange(per)[sample_columns(per, GRAM_SAMPLE)], device=t.device)
    step = max(1, CHUNK_ELEMENTS // max(per, 1)) if per_unit else units
    mult = _row_mult(torch, per, t.device) if per_unit else None
    wide = torch.float64
    for u0 in range(0, units, step):
        x = m[u0:u0 + step].to(wide)
        fin = torch.isfinite(x)
        nfin = int(fin.sum().item())
        counts["nan"] += int(torch.isnan(x).sum().item())
        counts["inf"] += int(torch.isinf(x).sum().item())
        if nfin:
            v = x[fin]
            cmin, cmax = float(v.min().item()), float(v.max().item())
            if cmin < lo:
                lo, lo_n = cmin, 0
            if cmax > hi:
                hi, hi_n = cmax, 0
            if cmin == lo:
                lo_n += int((v == cmin).sum().item())
            if cmax == hi:
                hi_n += int((v == cmax).sum().item())
            a = v.abs()
            zeros = int((v == 0).sum().item())
            counts["zeros"] += zeros
            counts["subnormal"] += int((a < tiny).sum().item()) - zeros
            spread = cmax - cmin
            e = 0 if spread == 0 or 2.0**-200 <= spread <= 2.0**200 else math.frexp(spread)[1]
            xs = torch.ldexp(v, torch.tensor(-e, device=t.device)) if e else v
            mu = float(xs.mean().item())
            d = xs - mu
            d2 = d * d
            s = torch.stack([d2.sum(), (d2 * d).sum(), (d2 * d2).sum()]).cpu().numpy()
            m2, m3, m4 = (0.0, 0.0, 0.0) if spread == 0 else (float(s[0]), float(s[1]), float(s[2]))
            mom.merge(nfin, cmin if spread == 0 else math.ldexp(mu, e), m2, m3, m4, e)
        if per_unit:
            bad = ~fin.all(dim=1)
            xr = torch.where(fin, x, torch.zeros((), dtype=wide, device=t.device))
            rmin, rmax = x.amin(dim=1), x.amax(dim=1)
            rm = xr.mean(dim=1)
            scale = torch.clamp(torch.maximum(rmax.abs(), rmin.abs()), min=1e-300)
            rs = ((xr - rm[:, None]) / scale[:, None]).pow(2).mean(dim=1).sqrt() * scale
            const = (rmin == rmax) & ~bad
            rs = torch.where(const, torch.zeros((), dtype=wide, device=t.device), rs)
            bits = m[u0:u0 + step]
            bits = bits.view(torch.int16 if bits.element_size() == 2 else torch.uint8 if bits.element_size() == 1
                             else torch.int32 if bits.element_size() == 4 else torch.int64).to(torch.int64)
            h1 = (bits * mult[0]).sum(dim=1)
            h2 = ((bits ^ (bits >> 29)) * mult[1]).sum(dim=1)
            out = torch.stack([rm, rs, const.to(wide), bad.to(wide)]).cpu().numpy()
            row_mean.append(out[0])
            row_std.append(out[1])
            row_const.append(out[2] > 0)
            row_bad.append(out[3] > 0)
            hh = torch.stack([h1, h2]).cpu().numpy()
            h1s.append(hh[0])
            h2s.append(hh[1])
            if mode == "rows":
                sel = picks[(picks >= u0) & (picks < u0 + x.shape[0])] - u0
                if sel.size:
                    gram_rows.append(x[torch.as_tensor(sel, device=t.device)])
            elif mode == "cols":
                sub = x[:, cols]
                g = sub.T @ sub
                col_gram = g if col_gram is None else col_gram + g
    st = TensorStats(count=units * per, finite=mom.n, nan=counts["nan"], inf=counts["inf"])
    if mom.n:
        st.mean, st.min, st.max = mom.mean, lo, hi
        st.min_count, st.max_count = lo_n, hi_n
        st.max_abs = max(abs(lo), abs(hi))
        st.zero_fraction = counts["zeros"] / mom.n
        st.subnormal = counts["subnormal"]
        var_s = 0.0 if lo == hi else mom.m2 / mom.n
        st.std = math.ldexp(math.sqrt(var_s), mom.e)
        st.rms = math.hypot(st.mean, st.std)
        if var_s > 0:
            st.excess_kurtosis = (mom.m4 / mom.n) / (var_s * var_s) - 3.0
            st.skewness = (mom.m3 / mom.n) / var_s**1.5
        threshold = TAIL_RMS * st.rms
        if st.max_abs > threshold:
            a = t.detach().reshape(-1)
            tail = sum(int(((a[i:i + CHUNK_ELEMENTS].to(wide).abs() > threshold)
                            & torch.isfinite(a[i:i + CHUNK_ELEMENTS])).sum().item())
                       for i in range(0, a.numel(), CHUNK_ELEMENTS))
            st.tail_fraction = tail / mom.n
        else:
            st.tail_fraction = 0.0
    if per_unit and per > 1:
        mean, std = np.concatenate(row_mean), np.concatenate(row_std)
        const, bad = np.concatenate(row_const), np.concatenate(row_bad)
        mean[bad] = np.nan
        std[bad] = np.nan
        st.units = units
        st.constant_units = int(const.sum())
        st.unit_rms = np.hypot(mean, std)
        good = std[~bad]
        if good.size and st.std and st.std > 0:
            st.unit_std_spread = float((good / st.std).std())
        h1, h2 = np.concatenate(h1s)[~bad], np.concatenate(h2s)[~bad]
        st.duplicate_units = int(h1.size - np.unique(np.stack([h1, h2], axis=1), axis=0).shape[0])
        with np.errstate(over="ignore", invalid="ignore"):
            if mode == "rows" and gram_rows:
                r = torch.cat(gram_rows)
                st.sample_gram = (r @ r.T).cpu().numpy()
            elif mode == "cols" and col_gram is not None:
                st.sample_gram = col_gram.cpu().numpy()
    return st
