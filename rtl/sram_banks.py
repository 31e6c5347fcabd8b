from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from .sram_bank import SramBank, bank_port_signature

__all__ = ["SramBanks"]


class SramBanks(wiring.Component):
    """``banks`` independent :class:`SramBank` s side by side (the MEM slice).

    Port ``bank`` is an array of bank port bundles, ``bank[i]`` for bank ``i``; in Verilog
    they are named ``bank__<i>__<port>``. Every bank streams and writes on its own, in the
    same cycle as the others.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({"bank": Out(bank_port_signature(config)).array(config.banks)})

    @property
    def latency(self):
        return self.config.sram_read_latency

    def elaborate(self, platform):
        m = Module()
        for i in range(self.config.banks):
            bank = SramBank(self.config)
            m.submodules[f"bank{i}"] = bank
            wiring.connect(m, wiring.flipped(self.bank[i]), bank)
        return m
