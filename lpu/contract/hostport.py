"""The tile's host port: the one device interface and the one definition of its operations.

A *device* is anything with the host port's operations (:class:`Device`): the golden model
(``model.tile.TileModel``), the board behind its serial bridge (``lpu.host.device.
BridgeDevice``) and the cocotb driver of the simulated tile (``tb.host.HostDriver``, whose
methods are coroutines with the same names and arguments). :func:`load_run` loads a compiled
run's memory image into any of them.

:class:`HostPort` turns each operation into the port accesses that carry it
(``Access(region, bank, addr, part, value)``, with ``value`` the integer on ``h_wdata`` or
``h_rdata``), so the bridge client, the cocotb driver and the benchmark's native harness only
move accesses and never repeat how words, parameter rows, programs and counters are laid out.
"""

import inspect
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from .bits import pack, unpack
from .isa import COUNTERS, Region, encode, pack_params, param_words

__all__ = ["Access", "Device", "HostPort", "load_run"]


class Access(NamedTuple):
    region: int
    bank: int
    addr: int
    part: int
    value: int


@runtime_checkable
class Device(Protocol):
    """The host port's operations. ``words`` are int8 ``(n, lanes)``; ``params`` is a dict
    with ``bias``, ``multiplier``, ``shift`` (``lanes`` values each), ``zero_point``,
    ``act_min``, ``act_max`` (``lpu.contract.isa.param_fields``); :meth:`run` loads and runs
    a program (a list of :class:`lpu.contract.isa.Insn`) and returns the counters
    (``lpu.contract.isa.COUNTERS``). State persists between runs, as in the hardware."""

    config: object

    def write_sram(self, bank, addr, words): ...

    def read_sram(self, bank, addr, count): ...

    def write_params(self, row, params): ...

    def run(self, program): ...


def load_run(dev, run):
    """Write a compiled run's memory image (``run.sram``: bank -> (addr, words);
    ``run.params``: row -> params) into ``dev``. For a device whose operations are
    coroutines (the cocotb driver) this returns an awaitable that does it."""
    calls = [(dev.write_sram, (bank, addr, words)) for bank, (addr, words) in run.sram.items()]
    calls += [(dev.write_params, (row, params)) for row, params in run.params.items()]
    if inspect.iscoroutinefunction(dev.write_sram):
        async def load():
            for fn, args in calls:
                await fn(*args)
        return load()
    for fn, args in calls:
        fn(*args)
    return None


class HostPort:
    """The accesses that carry each host-port operation for one configuration."""

    def __init__(self, config):
        self.config = config

    def _sram_addrs(self, addr, count):
        return [(addr + i) % self.config.depth for i in range(count)]

    def sram_writes(self, bank, addr, words):
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        return [Access(Region.SRAM, bank, a, 0, pack(w, 8))
                for a, w in zip(self._sram_addrs(addr, len(words)), words)]

    def sram_reads(self, bank, addr, count):
        return [Access(Region.SRAM, bank, a, 0, 0) for a in self._sram_addrs(addr, count)]

    def sram_words(self, values):
        """The words read by :meth:`sram_reads`, int8 ``(count, lanes)``."""
        L = self.config.lanes
        return np.array([unpack(v, 8, L) for v in values], dtype=np.int8).reshape(-1, L)

    def param_writes(self, row, params):
        cfg = self.config
        packed = pack_params(cfg.lanes, **params)
        return [Access(Region.PARAM, 0, row, part, word)
                for part, word in enumerate(param_words(cfg.lanes, cfg.param_part_bits, packed))]

    def program_writes(self, program):
        """``program``: instructions, or their encoded words."""
        return [Access(Region.IMEM, 0, pc, 0, insn if isinstance(insn, int) else encode(insn))
                for pc, insn in enumerate(program)]

    def counter_reads(self):
        return [Access(Region.COUNTER, 0, i, 0, 0) for i in range(len(COUNTERS))]

    def counters(self, values):
        """The values read by :meth:`counter_reads` as a dict in ``COUNTERS`` order."""
        return {name: int(v) & 0xFFFFFFFF for name, v in zip(COUNTERS, values)}
