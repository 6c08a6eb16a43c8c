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
from .stats import (BLOCK_ELEMENTS, TAIL_RMS, StatsAccumulator, TensorStats, _Scratch, sample_columns,
                    work_dtype)

CHUNK_ELEMENTS = 1 << 24  # values per work item: 32 MB of bfloat16, 64 MB of float32 mapped at a time

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
    return np.asarray(BIT_DECODERS[name](np.arange(256, dtype=np.uint8)), dtype=np.float32)


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
    a = ref.raw()
    a = a.reshape(ref.shape) if ref.shape else a.reshape(1)
    if a.ndim <= 1:
        return a.reshape(-1, 1)
    return np.moveaxis(a, ref.unit_axis % a.ndim, 0)


def _stored_work_dtype(ref: TensorRef, view: np.ndarray) -> np.dtype:
    if ref._decode is None and view.dtype == np.float64:
        return np.dtype(np.float64)
    return work_dtype(ref.dtype)


class _Reader:
    """Blocks of decoded units of one tensor, from a view with the unit axis first."""

    def __init__(self, ref: TensorRef):
        self.ref = ref
        self.view = _unit_view(ref)
        self.units = self.view.shape[0]
        self.per = int(np.prod(self.view.shape[1:], dtype=np.int64)) if self.view.ndim > 1 else 1
        self.wd = _stored_work_dtype(ref, self.view)
        self.decode = _decoder(ref)

    def rows(self, start: int, stop: int) -> np.ndarray:
        raw = self.view[start:stop]
        out = _scratch().get("x", raw.size, self.wd).reshape(raw.shape)
        return self.decode(raw, out).reshape(stop - start, self.per)

    def pieces(self, unit: int) -> Iterator[np.ndarray]:
        """One long unit in pieces of at most BLOCK_ELEMENTS values."""
        row = self.view[unit].reshape(-1)
        for i in range(0, row.size, BLOCK_ELEMENTS):
            raw = row[i:i + BLOCK_ELEMENTS]
            out = _scratch().get("x", raw.size, self.wd)
            yield self.decode(raw, out).reshape(1, -1)

    def take(self, idx: np.ndarray) -> np.ndarray:
        """Whole units by index, decoded (a copy)."""
        raw = self.view[np.asarray(idx, dtype=np.intp)]
        out = np.empty(raw.shape, dtype=self.wd)
        return np.array(self.decode(raw, out), copy=True).reshape(len(idx), self.per)


def chunks(ref: TensorRef, chunk_elements: int = CHUNK_ELEMENTS) -> list[tuple[int, int]]:
    """Unit ranges of about ``chunk_elements`` values covering the tensor (whole units; shape-only)."""
    if ref.size == 0:
        return []
    shape = ref.shape
    units = shape[ref.unit_axis % len(shape)] if len(shape) >= 2 else (shape[0] if shape else 1)
    per = max(ref.size // max(units, 1), 1)
    step = max(1, chunk_elements // per)
    return [(u, min(u + step, units)) for u in range(0, units, step)]


def _accumulate(ref: TensorRef, per_unit: bool, total_units: int, u0: int, u1: int) -> StatsAccumulator:
    """Statistics of units u0..u1 of one tensor."""
    reader = _Reader(ref)
    scratch = _scratch()
    acc = StatsAccumulator(per_unit, total_units, ref.dtype, scratch=scratch)
    if reader.per <= BLOCK_ELEMENTS:
        step = max(1, BLOCK_ELEMENTS // reader.per)
        for s in range(u0, u1, step):
            acc.add(reader.rows(s, min(s + step, u1)), s)
        acc.seal()
        return acc
    for unit in range(u0, u1):  # units longer than a block: each unit summed in pieces, folded in as one
        sub = StatsAccumulator(False, None, ref.dtype, scratch=scratch)
        for piece in reader.pieces(unit):
            sub.add(piece)
        sample = reader.view[unit].reshape(-1)
        picked = sample[sample_columns(reader.per)]
        acc.add_long_unit(sub, np.array(reader.decode(picked, np.empty(picked.size, reader.wd))), unit)
    acc.seal()
    return acc


def _tail_count(ref: TensorRef, threshold: float, u0: int, u1: int) -> int:
    reader = _Reader(ref)
    count = 0
    if reader.per <= BLOCK_ELEMENTS:
        step = max(1, BLOCK_ELEMENTS // reader.per)
        blocks: Iterator[np.ndarray] = (reader.rows(s, min(s + step, u1)) for s in range(u0, u1, step))
    else:
        blocks = (p for unit in range(u0, u1) for p in reader.pieces(unit))
    for x in blocks:
        a = np.abs(x)
        # finite values only: NaN compares false, Inf is taken back out
        count += int(np.count_nonzero(a > threshold)) - int(np.count_nonzero(a == np.inf))
    return count


def tensor_stats(ref: TensorRef, per_unit: bool = True) -> TensorStats:
    """Statistics of one tensor in one pass (one thread); see :func:`compute_all` for many."""
    return _finish(ref, per_unit, [_accumulate(ref, per_unit, _units(ref), u0, u1) for u0, u1 in chunks(ref)],
                   map)


def _units(ref: TensorRef) -> int:
    return ref.units()


def _finish(ref: TensorRef, per_unit: bool, parts: list[StatsAccumulator], mapper) -> TensorStats:
    if not parts:
        return TensorStats()
    acc = parts[0]
    for p in parts[1:]:
        acc.merge(p)
    st = acc.result(lambda idx: _Reader(ref).take(idx))
    if math.isnan(st.tail_fraction) and st.finite:
        threshold = TAIL_RMS * st.rms
        counts = mapper(lambda r: _tail_count(ref, threshold, *r), chunks(ref))
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
                todo.append((p, p is layer.weight and layer.is_matrix))
    items = [(i, u0, u1) for i, (p, _) in enumerate(todo) for u0, u1 in chunks(p.tensor)]
    total = sum(p.tensor.size for p, _ in todo)
    parts: dict[tuple[int, int], StatsAccumulator] = {}

    def run(item: tuple[int, int, int]) -> StatsAccumulator:
        i, u0, u1 = item
        p, per_unit = todo[i]
        return _accumulate(p.tensor, per_unit, p.tensor.units(), u0, u1)

    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="initcheck-stats") if jobs > 1 else None
    try:
        with Progress(total, "statistics", enabled=progress, unit="values") as bar:
            if pool is None:
                for item in items:
                    parts[item[:2]] = run(item)
                    bar.advance(_item_size(todo, item), todo[item[0]][0].name)
            else:
                futures = {pool.submit(run, item): item for item in items}
                for fut in as_completed(futures):
                    item = futures[fut]
                    parts[item[:2]] = fut.result()
                    bar.advance(_item_size(todo, item), todo[item[0]][0].name)
        mapper = map if pool is None else pool.map
        for i, (p, per_unit) in enumerate(todo):
            p.stats = _finish(p.tensor, per_unit, [parts[(i, u0)] for u0, _ in chunks(p.tensor)], mapper)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    for p, _ in todo:  # an empty tensor still gets (empty) statistics
        if p.stats is None:
            p.stats = TensorStats()


def _item_size(todo: list, item: tuple[int, int, int]) -> int:
    i, u0, u1 = item
    t = todo[i][0].tensor
    return (u1 - u0) * max(t.size // max(t.units(), 1), 1)
