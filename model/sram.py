"""SRAM banks: contents and the cycle each streamed word appears."""

import numpy as np

__all__ = ["SramModel"]


class SramModel:
    """``banks`` x ``depth`` words of ``lanes`` int8, stepped one cycle at a time.

    Contract (the RTL's): a stream started on cycle ``c`` with (base, stride, count) issues
    address ``(base + i*stride) % depth`` on cycle ``c + bank_start_latency + i``; the word
    read appears on the bank's output ``sram_read_latency`` cycles later. A write on cycle
    ``c`` is visible to reads from cycle ``c + 1`` (read-first). A start cuts off what a
    running stream has left after the start's cycle.
    """

    def __init__(self, config):
        self.config = config
        assert config.bank_start_latency == 1, "the model's streams start a cycle late"
        self.mem = np.zeros((config.banks, config.depth, config.lanes), dtype=np.int8)
        self._stream = [None] * config.banks        # [addr due, stride, addresses left]
        self._pipe = [[] for _ in range(config.banks)]  # per bank: words in flight

    def busy(self, bank):
        """The bank's stream has an address due next cycle (a start now would cut it)."""
        s = self._stream[bank]
        return s is not None and s[2] > 1

    def step(self, starts=None, writes=None):
        """Advance one cycle. ``starts``: {bank: (base, stride, count)};
        ``writes``: {bank: (addr, int8[lanes], bool[lanes] mask)}.
        Returns {bank: int8[lanes] or None}: each bank's streamed output in this cycle."""
        cfg = self.config
        out = {}
        for b in range(cfg.banks):
            addr = None
            s = self._stream[b]
            if s is not None and s[2] > 0:
                addr, s[0], s[2] = s[0], (s[0] + s[1]) % cfg.depth, s[2] - 1
            if starts and b in starts:
                base, stride, count = starts[b]
                self._stream[b] = [base % cfg.depth, stride, count]
            self._pipe[b].append(None if addr is None else self.mem[b, addr].copy())
            out[b] = self._pipe[b].pop(0) if len(self._pipe[b]) > cfg.sram_read_latency else None
        for b, (addr, data, mask) in (writes or {}).items():
            mask = np.asarray(mask, dtype=bool)
            self.mem[b, addr % cfg.depth, mask] = np.asarray(data, dtype=np.int8)[mask]
        return out
