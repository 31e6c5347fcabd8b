"""The matrix unit: the streaming weight-stationary matmul pipeline, bit- and cycle-exact.

Contract (``rtl/matmul_array.py``, ``rtl/accumulator.py``):

* A weight-row write ``(c, buf, k, row)`` on cycle ``c`` is seen by PE(k, n) from cycle
  ``c + 1``.
* An activation ``a`` entering on cycle ``t`` with buffer ``buf`` meets PE(k, n) on cycle
  ``t + k + n`` and so uses ``W_buf[k][n]`` as it stood after the writes of cycles
  ``<= t + k + n - 1``. Its result vector ``r[n] = sum_k a[k] * W[k][n]`` (exact in int32)
  leaves the array on cycle ``t + mxm_latency``.
* On cycle ``t + mxm_latency + 1`` the accumulator update happens:
  ``acc[addr] = (acc[addr] if accumulate else 0) + r`` wrapping mod 2**32; a read of the
  accumulators sees it from cycle ``t + mxm_latency + 2`` on.
"""

import numpy as np

from .arith import wrap32

__all__ = ["MatmulModel", "Activations", "acc_timeline", "apply_updates"]


class Activations:
    """A batch of activations, as arrays: ``cycle`` (N,), ``buf`` (N,), ``data`` (N, L) int8,
    ``addr`` (N,), ``accumulate`` (N,)."""

    def __init__(self, cycle, buf, data, addr, accumulate):
        self.cycle = np.asarray(cycle, dtype=np.int64)
        self.buf = np.asarray(buf, dtype=np.int64)
        self.data = np.asarray(data, dtype=np.int8)
        self.addr = np.asarray(addr, dtype=np.int64)
        self.accumulate = np.asarray(accumulate, dtype=bool)

    @classmethod
    def concat(cls, parts, lanes):
        if not parts:
            z = np.zeros(0, dtype=np.int64)
            return cls(z, z, np.zeros((0, lanes), np.int8), z, z.astype(bool))
        return cls(*(np.concatenate([getattr(p, f) for p in parts])
                     for f in ("cycle", "buf", "data", "addr", "accumulate")))

    def __len__(self):
        return len(self.cycle)


class MatmulModel:
    def __init__(self, config):
        self.config = config
        L = config.lanes
        # per (buf, row): write cycles (ascending) and the rows written; version 0 = zeros
        self._wc = {(b, k): [-(1 << 62)] for b in (0, 1) for k in range(L)}
        self._wd = {(b, k): [np.zeros(L, np.int8)] for b in (0, 1) for k in range(L)}
        # per buffer: the newest weights and the cycle each row was last written
        self._newest = np.zeros((2, L, L), np.int64)
        self._newest_cycle = np.full((2, L), -(1 << 62), np.int64)
        self.acc = np.zeros((config.acc_depth, L), dtype=np.int32)

    def forget_before(self, cycle):
        """Drop weight versions superseded before ``cycle`` (keeps lookups fast)."""
        for key in self._wc:
            wc, wd = self._wc[key], self._wd[key]
            keep = max(0, int(np.searchsorted(wc, cycle, side="right")) - 1)
            self._wc[key], self._wd[key] = wc[keep:], wd[keep:]

    def write_weights(self, cycle, buf, row, values):
        key = (int(buf), int(row))
        if cycle <= self._wc[key][-1]:
            raise ValueError("weight writes must be given in cycle order")
        self._wc[key].append(int(cycle))
        self._wd[key].append(np.asarray(values, dtype=np.int8).copy())
        self._newest[key] = self._wd[key][-1]
        self._newest_cycle[key] = int(cycle)

    def write_rows(self, cycles, buf, rows):
        """Weight rows 0, 1, ... of ``buf`` written on ``cycles`` (one per row)."""
        for row, (cycle, values) in enumerate(zip(cycles, rows)):
            self.write_weights(int(cycle), buf, row, values)

    def results(self, act):
        """Result vectors (N, L) int32 for ``act``, leaving the array at
        ``act.cycle + mxm_latency``. All weight writes must have been given first."""
        L = self.config.lanes
        N = len(act)
        out = np.zeros((N, L), dtype=np.int64)
        a = act.data.astype(np.int64)
        for b in (0, 1):
            sel = np.nonzero(act.buf == b)[0]
            if not len(sel):
                continue
            t = act.cycle[sel]
            # fast path: every row was last written before the earliest activation needs it
            # (row k is first used on t + k and sees writes of cycles <= t + k - 1), so every
            # PE uses the newest weights: one matrix product
            if np.all(self._newest_cycle[b] <= t.min() + np.arange(L) - 1):
                out[sel] = a[sel] @ self._newest[b]
                continue
            for k in range(L):
                wc = np.asarray(self._wc[(b, k)])
                wd = np.stack(self._wd[(b, k)]).astype(np.int64)   # (versions, L)
                first = np.searchsorted(wc, t + k - 1, side="right") - 1
                last = np.searchsorted(wc, t + k + L - 2, side="right") - 1
                same = first == last        # fast path: one weight version across the row
                out[sel[same]] += a[sel[same], k, None] * wd[first[same]]
                for i in np.nonzero(~same)[0]:   # a row rewritten under a moving activation
                    for n in range(L):
                        v = np.searchsorted(wc, t[i] + k + n - 1, side="right") - 1
                        out[sel[i], n] += a[sel[i], k] * wd[v, n]
        return out.astype(np.int32)

    def run(self, act, read_cycle=(), read_addr=()):
        """Results of ``act`` (N, L) and the accumulator rows read on ``read_cycle`` at
        ``read_addr`` (R, L); updates ``self.acc``. All weight writes must be given first.
        A read's cycle is its address's on the accumulators' read port, which reaches the
        memory ``acc_address_latency`` later."""
        results = self.results(act)
        at_memory = np.asarray(read_cycle, dtype=np.int64) + self.config.acc_address_latency
        reads = acc_timeline(self.acc, act, results, at_memory,
                             np.asarray(read_addr, dtype=np.int64),
                             self.config.mxm_latency + self.config.acc_update_delay)
        return results, reads


def apply_updates(acc, addr, accumulate, results):
    """``acc[addr[i]] = (acc[addr[i]] if accumulate[i] else 0) + results[i]`` for i in order,
    wrapping; vectorised over runs of distinct addresses."""
    i, n = 0, len(addr)
    while i < n:
        seen = set()
        j = i
        while j < n and int(addr[j]) not in seen:
            seen.add(int(addr[j]))
            j += 1
        a = addr[i:j]
        base = np.where(accumulate[i:j, None], acc[a].astype(np.int64), 0)
        acc[a] = wrap32(base + results[i:j])
        i = j


def acc_timeline(acc, act, results, read_cycle, read_addr, update_delay):
    """Exact accumulator behaviour over time, in place on ``acc``.

    Updates of ``act`` are written on ``act.cycle + update_delay``; a read on cycle ``r``
    sees the updates written on cycles before ``r``. Returns the rows read, (R, L)."""
    ucycle = act.cycle + update_delay
    order = np.argsort(ucycle, kind="stable")
    ucycle = ucycle[order]
    rorder = np.argsort(read_cycle, kind="stable")
    out = np.zeros((len(read_cycle), acc.shape[1]), dtype=np.int32)
    done = 0
    for ri in rorder:
        upto = int(np.searchsorted(ucycle, read_cycle[ri], side="left"))
        if upto > done:
            sl = order[done:upto]
            apply_updates(acc, act.addr[sl], act.accumulate[sl], results[sl])
            done = upto
        out[ri] = acc[read_addr[ri]]
    if done < len(order):
        sl = order[done:]
        apply_updates(acc, act.addr[sl], act.accumulate[sl], results[sl])
    return out
