"""The statistics pass over a model: every tensor read once, in cache-sized blocks, on all cores.

Work is split into *chunks* of whole units (about ``CHUNK_ELEMENTS`` values each; the split depends only
on the tensor's shape, never on ``jobs``), so results are identical for any number of jobs. Chunks run on
a thread pool (numpy and BLAS release the GIL inside their loops); each thread owns its scratch buffers.
A chunk maps the tensor (``TensorRef.raw()``: a memory map for files), decodes one block of at most
``BLOCK_ELEMENTS`` values at a time into a reused float32 buffer (bfloat16 and float8 bit patterns are
decoded there once per block) and feeds :class:`~initcheck.stats.StatsAccumulator`; its map is dropped
when the chunk ends, so the resident set per worker stays near one chunk plus a few buffers. Chunks of a
tensor are merged in order (Chan/Pébay, exact), then duplicate-unit candidates are confirmed by re-reading
only those units, and the tail count (|x| > 6·rms) re-reads a tensor only when its max|x| is that large.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Iterator

import numpy as np

from .model import BIT_DECODERS, Model, Param, TensorRef
from .progress import Progress
from .stats import (BLOCK_ELEMENTS, TAIL_RMS, ColumnUnitsAccumulator, StatsAccumulator, TensorStats, _Scratch,
                    sample_columns, work_dtype)

CHUNK_ELEMENTS = 1 << 24  # values per work item: 32 MB of bfloat16, 64 MB of float32 mapped at a time
PARALLEL_MIN_VALUES = 1 << 22  # below this many values in all, one thread

_local = threading.local()


def _scratch() -> _Scratch:
    s = getattr(_local, "scratch", None)
    if s is None:
        s = _local.scratch = _Scratch()
    return s


def default_jobs() -> int:
    """The CPUs this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


# ------------------------------------------------------------------------------------------ decoding
def _fp8_table(name: str) -> np.ndarray:
    """The 256 values of a float8 format as float32; NaN codes as quiet NaNs (float8_e5m2's NaN codes
    widen to signalling float16 NaNs, which warn when cast)."""
    with np.errstate(invalid="ignore"):
        t = np.asarray(BIT_DECODERS[name](np.arange(256, dtype=np.uint8)), dtype=np.float32)
    return np.where(np.isnan(t), np.float32(np.nan), t).astype(np.float32)


_FP8_TABLES: dict[str, np.ndarray] = {}


def _decoder(ref: TensorRef) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """decode(raw_block, out) → float block (``out`` when a copy is needed, else a view of the input)."""
    custom = ref._decode
    if custom is not None and custom is not BIT_DECODERS.get(ref.dtype):
        return lambda raw, out: np.asarray(custom(raw), dtype=out.dtype)
    if ref.dtype == "bfloat16":
        def bf16(raw: np.ndarray, out: np.ndarray) -> np.ndarray:
            # bfloat16 is the high half of a float32: one widening shift into the float32 buffer
            np.left_shift(raw, 16, out=out.view(np.uint32), dtype=np.uint32)
            return out
        return bf16
    if ref.dtype in ("float8_e4m3fn", "float8_e5m2"):
        table = _FP8_TABLES.get(ref.dtype)
        if table is None:
            table = _FP8_TABLES[ref.dtype] = _fp8_table(ref.dtype)

        def fp8(raw: np.ndarray, out: np.ndarray) -> np.ndarray:
            np.take(table, raw, out=out)
            return out
        return fp8

    def native(raw: np.ndarray, out: np.ndarray) -> np.ndarray:
        if raw.dtype == out.dtype and raw.flags.c_contiguous:
            return raw  # float32/float64 in place: no copy at all
        np.copyto(out, raw, casting="unsafe")
        return out
    return native


def _unit_view(ref: TensorRef) -> np.ndarray:
    """The stored array with the unit axis first (a view: nothing read yet)."""
    a = np.asarray(ref.raw())
    a = a.reshape(ref.shape) if ref.shape else a.reshape(1)
    if a.ndim <= 1:
        return a.reshape(-1, 1)
    return np.moveaxis(a, ref.unit_axis % a.ndim, 0)


def _stored_work_dtype(ref: TensorRef, raw_dtype: np.dtype) -> np.dtype:
    if ref._decode is None and raw_dtype == np.float64:
        return np.dtype(np.float64)
    return work_dtype(ref.dtype)


def layout(ref: TensorRef, per_unit: bool) -> str:
    """How the pass walks a tensor: ``flat`` (storage order, no per-unit figures), ``columns`` (units
    are the last axis: runs of stored rows, no transposing copy) or ``rows`` (units along the first
    axis, or gathered from another one)."""
    if not per_unit or len(ref.shape) < 2:
        return "flat"
    return "columns" if ref.unit_axis % len(ref.shape) == len(ref.shape) - 1 else "rows"


class _Reader:
    """Decoded blocks of one tensor in the shape its layout walks: (units, per) for ``rows``,
    (positions, units) for ``columns``, (1, n) for ``flat``."""

    def __init__(self, ref: TensorRef, mode: str):
        self.ref = ref
        self.mode = mode
        raw = np.asarray(ref.raw())  # a plain view: slicing np.memmap objects costs Python time per block
        self.decode = _decoder(ref)
        self.wd = _stored_work_dtype(ref, raw.dtype)
        if mode == "rows":
            self.view = _unit_view(ref)
            self.units = self.view.shape[0]
            self.per = max(ref.size // max(self.units, 1), 1)
        else:
            shape = ref.shape or (1,)
            self.units = shape[-1] if mode == "columns" else 1
            self.view = raw.reshape(-1, self.units) if mode == "columns" else raw.reshape(1, -1)
            self.per = self.view.shape[0] if mode == "columns" else ref.size

    def block(self, start: int, stop: int) -> np.ndarray:
        raw = self.view[start:stop] if self.mode != "flat" else self.view[0, start:stop]
        out = _scratch().get("x", raw.size, self.wd).reshape(raw.shape)
        x = self.decode(raw, out)
        return x.reshape(stop - start, -1) if self.mode != "flat" else x.reshape(1, -1)

    def pieces(self, unit: int) -> Iterator[np.ndarray]:
        """One long unit (rows layout) in pieces of at most BLOCK_ELEMENTS values."""
        row = self.view[unit].reshape(-1)
        for i in range(0, row.size, BLOCK_ELEMENTS):
            raw = row[i:i + BLOCK_ELEMENTS]
            out = _scratch().get("x", raw.size, self.wd)
            yield self.decode(raw, out).reshape(1, -1)

    def take_units(self, idx: np.ndarray) -> np.ndarray:
        """Whole units by index, decoded (a copy), as (len(idx), elements per unit)."""
        view = _unit_view(self.ref)
        raw = view[np.asarray(idx, dtype=np.intp)]
        out = np.empty(raw.shape, dtype=self.wd)
        return np.array(self.decode(raw, out), copy=True).reshape(len(idx), -1)

    def step(self) -> int:
        """Walked-axis entries per block: about BLOCK_ELEMENTS values."""
        if self.mode == "flat":
            return BLOCK_ELEMENTS
        width = self.per if self.mode == "rows" else self.units
        return max(1, BLOCK_ELEMENTS // max(width, 1))


def _walk_extent(ref: TensorRef, mode: str) -> tuple[int, int]:
    """(length of the walked axis, values per entry of it), from the shape alone."""
    shape = ref.shape or (1,)
    if mode == "flat":
        return ref.size, 1
    if mode == "columns":
        return ref.size // max(shape[-1], 1), shape[-1]
    units = shape[ref.unit_axis % len(shape)]
    return units, ref.size // max(units, 1)


def chunks(ref: TensorRef, mode: str, chunk_elements: int | None = None) -> list[tuple[int, int]]:
    """Ranges of the walked axis of about ``chunk_elements`` (default CHUNK_ELEMENTS) values; from the
    shape alone, so never dependent on the number of jobs."""
    if ref.size == 0:
        return []
    length, width = _walk_extent(ref, mode)
    step = max(1, (chunk_elements or CHUNK_ELEMENTS) // max(width, 1))
    return [(u, min(u + step, length)) for u in range(0, length, step)]


def _accumulate(ref: TensorRef, mode: str, u0: int, u1: int):
    """Statistics of entries u0..u1 of the walked axis of one tensor."""
    reader = _Reader(ref, mode)
    scratch = _scratch()
    step = reader.step()
    if mode == "columns":
        acc = ColumnUnitsAccumulator(reader.units, reader.per, ref.dtype, scratch=scratch)
        for s in range(u0, u1, step):
            acc.add(reader.block(s, min(s + step, u1)), s)
        return acc
    acc = StatsAccumulator(mode == "rows", reader.units if mode == "rows" else None, ref.dtype, scratch=scratch)
    if mode == "flat" or reader.per <= BLOCK_ELEMENTS:
        for s in range(u0, u1, step):
            acc.add(reader.block(s, min(s + step, u1)), s if mode == "rows" else None)
        acc.seal()
        return acc
    for unit in range(u0, u1):  # units longer than a block: each unit summed in pieces, folded in as one
        sub = StatsAccumulator(False, None, ref.dtype, scratch=scratch)
        for piece in reader.pieces(unit):
            sub.add(piece)
        picked = reader.view[unit].reshape(-1)[sample_columns(reader.per)]
        acc.add_long_unit(sub, np.array(reader.decode(picked, np.empty(picked.size, reader.wd))), unit)
    acc.seal()
    return acc


def _tail_count(ref: TensorRef, threshold: float, u0: int, u1: int) -> int:
    """Finite values with |x| > threshold among values u0..u1 (storage order)."""
    reader = _Reader(ref, "flat")
    count = 0
    for s in range(u0, u1, BLOCK_ELEMENTS):
        a = np.abs(reader.block(s, min(s + BLOCK_ELEMENTS, u1)))
        # finite values only: NaN compares false, Inf is taken back out
        count += int(np.count_nonzero(a > threshold)) - int(np.count_nonzero(a == np.inf))
    return count


def tensor_stats(ref: TensorRef, per_unit: bool = True) -> TensorStats:
    """Statistics of one tensor in one pass (one thread); see :func:`compute_all` for many."""
    mode = layout(ref, per_unit)
    return _finish(ref, mode, [_accumulate(ref, mode, u0, u1) for u0, u1 in chunks(ref, mode)], map)


def _finish(ref: TensorRef, mode: str, parts: list, mapper) -> TensorStats:
    """Merge a tensor's chunk accumulators in order; confirm duplicates; count the tail if needed."""
    if not parts:
        return TensorStats()
    acc = parts[0]
    for p in parts[1:]:
        acc.merge(p)
    st = acc.result(lambda idx: _Reader(ref, "rows").take_units(idx))
    if math.isnan(st.tail_fraction) and st.finite:
        threshold = TAIL_RMS * st.rms
        counts = mapper(lambda r: _tail_count(ref, threshold, *r), chunks(ref, "flat"))
        st.tail_fraction = sum(counts) / st.finite
    return st


def compute_all(model: Model, jobs: int | None = None, progress: bool | None = None) -> None:
    """Statistics of every parameter of ``model`` without statistics yet, on ``jobs`` threads (default:
    all CPUs). Tied tensors are one Param and are read once. Results do not depend on ``jobs``."""
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    todo: list[tuple[Param, bool]] = []
    seen: set[int] = set()
    for layer in model.layers:
        for p in layer.params:
            if p.stats is None and id(p) not in seen:
                seen.add(id(p))
                per_unit = p is layer.weight and layer.is_matrix
                if p.tensor.device_stats is not None:  # on an accelerator: computed there, results copied
                    p.stats = p.tensor.device_stats(per_unit)
                else:
                    todo.append((p, per_unit))
    modes = [layout(p.tensor, per_unit) for p, per_unit in todo]
    items = [(i, u0, u1) for i, (p, _) in enumerate(todo) for u0, u1 in chunks(p.tensor, modes[i])]
    total = sum(p.tensor.size for p, _ in todo)
    parts: dict[tuple[int, int], object] = {}

    def run(item: tuple[int, int, int]):
        i, u0, u1 = item
        return _accumulate(todo[i][0].tensor, modes[i], u0, u1)

    def size(item: tuple[int, int, int]) -> int:
        i, u0, u1 = item
        return (u1 - u0) * _walk_extent(todo[i][0].tensor, modes[i])[1]

    if total < PARALLEL_MIN_VALUES or len(items) < 2:
        jobs = 1  # starting threads costs more than they save on a small model
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="initcheck-stats") if jobs > 1 else None
    mapper = map if pool is None else pool.map
    remaining = [len(chunks(p.tensor, modes[i])) for i, (p, _) in enumerate(todo)]

    def done(item: tuple[int, int, int], acc) -> None:
        """Keep a chunk's result; a tensor is finished (and its partial results freed: the Gram rows of
        a 7B model's matrices alone are ~0.5 GB) as soon as its last chunk is in."""
        i = item[0]
        parts[item[:2]] = acc
        remaining[i] -= 1
        if remaining[i] == 0:
            p = todo[i][0]
            order = [u0 for u0, _ in chunks(p.tensor, modes[i])]
            p.stats = _finish(p.tensor, modes[i], [parts.pop((i, u0)) for u0 in order], mapper)

    try:
        with Progress(total, "statistics", enabled=progress, unit="values") as bar:
            if pool is None:
                for item in items:
                    done(item, run(item))
                    bar.advance(size(item), todo[item[0]][0].name)
            else:
                futures = {pool.submit(run, item): item for item in items}
                for fut in as_completed(futures):
                    item = futures.pop(fut)
                    done(item, fut.result())
                    bar.advance(size(item), todo[item[0]][0].name)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    for p, _ in todo:  # an empty tensor still gets (empty) statistics
        if p.stats is None:
            p.stats = TensorStats()
