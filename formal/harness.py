from amaranth import *
from amaranth.hdl import Assert, Assume, Cover
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

__all__ = ["Harness"]


class Harness(wiring.Component):
    """Base of a formal harness: ``ports`` are the free inputs (and any outputs worth seeing
    in a waveform); ``ok`` is the conjunction of every assertion, for replay.

    Subclasses implement ``build(m)`` and state their contract with :meth:`check`,
    :meth:`assume`, :meth:`cover` and :meth:`constant`. The reset is never asserted: every
    register starts from its ``init``, as on the FPGA and in the testbenches.
    """

    def __init__(self, config, ports):
        self.config = config
        self.formal = True      # False: only the ``ok`` port, for replay in a simulator
        super().__init__({**ports, "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        self._oks = []
        self._first = Signal(init=1, name="first_cycle")
        m.d.sync += self._first.eq(0)
        self.assume(m, ~ResetSignal())
        self.build(m)
        m.d.comb += self.ok.eq(Cat(*self._oks).all() if self._oks else 1)
        return m

    def build(self, m):
        raise NotImplementedError

    def check(self, m, cond, name, *, when=1):
        """Assert ``cond`` on every cycle where ``when`` holds."""
        ok = Signal(name=f"ok_{name}")
        m.d.comb += ok.eq(~when | cond)
        if self.formal:
            m.d.comb += Assert(ok, name, src_loc_at=1)
        self._oks.append(ok)

    def assume(self, m, cond):
        if self.formal:
            m.d.comb += Assume(cond, src_loc_at=1)

    def cover(self, m, cond, name):
        if self.formal:
            m.d.comb += Cover(cond, name, src_loc_at=1)

    def constant(self, m, value):
        """The solver picks ``value`` once: it keeps it on every cycle."""
        prev = Signal.like(value, name=f"{value.name}_prev")
        m.d.sync += prev.eq(value)
        if self.formal:
            m.d.comb += Assume(self._first | (value == prev), src_loc_at=1)
