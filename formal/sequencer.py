import dataclasses

from amaranth import *
from amaranth.lib.wiring import In

from lpu.contract.isa import FIELDS, INSN_BITS, Op
from rtl.address_generator import AddressGenerator
from rtl.delay import delay
from rtl.sequencer import Sequencer

from .harness import Harness

__all__ = ["SequencerHarness", "SequencerIssueHarness", "SequencerDoneHarness"]


class SequencerHarness(Harness):
    """The sequencer (``rtl/sequencer.py``) with its banks' address generators, and the MXM,
    accumulator and VXM as their latencies (``lpu.contract.config``): the solver writes any
    program of legal instructions (``lpu.contract.isa``'s field ranges; races between units
    are the model's to refuse, not the sequencer's) and starts it on any cycle. Then:

    * one instruction issues per cycle at most: at most one bank stream starts per cycle;
    * no stream starts on a bank that is still streaming;
    * ``done`` never rises before the last write: while ``done`` is high no SRAM write, no
      weight row, no activation, no accumulator write and no VXM input happens;
    * (with the first two) each flip-flop the issue rules read instead of a compare (a rule
      counter's ``<= k``, WAIT's ``since_wait >= count``, ``rx_left == 0``) equals that
      compare on every cycle it is read.

    Bounded model checking (``depth`` cycles: every program that reaches ``done`` within it).
    """

    PROPERTIES = ("issue", "done")
    IMEM_DEPTH = 8      # programs of up to 8 instructions (the issue logic is the same for any)

    def __init__(self, config):
        config = dataclasses.replace(config, imem_depth=min(config.imem_depth, self.IMEM_DEPTH))
        super().__init__(config, {"start": In(1), "imem_we": In(1), "imem_addr": In(16),
                                  "imem_data": In(INSN_BITS)})

    def _legal(self, word):
        cfg = self.config
        f = {name: word[lsb:lsb + width] for name, (lsb, width) in FIELDS.items()}
        op = f["op"]
        common = (f["bank"] < cfg.banks) & (f["base"] < cfg.depth) & (f["stride"] < cfg.depth)
        counted = (f["count"] >= 1) & (f["count"] <= cfg.acc_depth) & (f["acc_base"] < cfg.acc_depth)
        return ((op == Op.HALT) | (op == Op.WAIT) |
                ((op == Op.LW) & common) |
                ((op == Op.MM) & common & counted) |
                ((op == Op.VX) & common & counted & (f["prow"] < cfg.param_depth)))

    def build(self, m):
        cfg = self.config
        P = cfg.vxm_passes
        seq = Sequencer(cfg)
        # elaborated here, so that its registered issue flags can be checked against the
        # compares they stand for
        m.submodules.seq = Fragment.get(seq, None)
        m.d.comb += [seq.start.eq(self.start), seq.imem_we.eq(self.imem_we),
                     seq.imem_addr.eq(self.imem_addr), seq.imem_data.eq(self.imem_data)]
        self.assume(m, ~self.imem_we | ((self.imem_addr < cfg.imem_depth) & self._legal(self.imem_data)))
        for b in range(cfg.banks):
            agen = AddressGenerator(cfg.addr_bits, cfg.count_bits)
            m.submodules[f"agen{b}"] = Fragment.get(agen, None)    # elaborated: its invariants
            for name, same in agen.invariants.items():
                self.check(m, same, f"agen{b}_{name}")
            m.d.comb += [agen.start.eq(seq.bank_start[b]), agen.base.eq(seq.bank_base),
                         agen.stride.eq(seq.bank_stride), agen.count.eq(seq.bank_count),
                         seq.bank_busy[b].eq(agen.busy), seq.bank_busy_next[b].eq(agen.busy_next),
                         seq.bank_busy_next2[b].eq(agen.busy_next2),
                         seq.bank_valid[b].eq(delay(m, agen.valid, cfg.sram_read_latency, f"bv{b}"))]
        # the VXM's result leaves vxm_latency after a row's first pass, i.e. after its last
        vx_last = seq.vx_valid & (seq.vx_pass == P - 1)
        m.d.comb += [seq.vx_o_valid.eq(delay(m, vx_last, cfg.vxm_latency - (P - 1), "vxo")),
                     seq.vx_o_tag.eq(delay(m, Value.cast(seq.vx_tag), cfg.vxm_latency - (P - 1),
                                           "vxt"))]
        # an activation entering the array on t updates its accumulator on t + A + update_delay
        acc_write = delay(m, seq.activations.valid, cfg.mxm_latency + cfg.acc_update_delay, "accw")

        starts = seq.bank_start
        if "issue" in self.PROPERTIES:
            self.check(m, (starts & (starts - 1)) == 0, "one_issue")
            self.check(m, (starts & seq.bank_busy) == 0, "bank_free")
            for name, (same, when) in seq.flag_invariants.items():
                self.check(m, same, f"flag_{name}", when=when)
        if "done" in self.PROPERTIES:
            activity = Cat(seq.wr_en != 0, seq.weights.valid, seq.activations.valid, acc_write,
                           seq.vx_valid)
            # while idle (done, or before the first start) nothing moves: the tile gives
            # the host the banks' write ports whenever the program writes none
            self.check(m, activity == 0, "idle_after_writes", when=~seq.busy)
        # non-vacuity: a program that writes SRAM runs to done (with a bit-serial VXM, whose
        # row takes 128 cycles a lane, beyond the cover's depth: one that streams activations)
        wrote = Signal()
        with m.If(self.start & ~seq.busy):
            m.d.sync += wrote.eq(0)
        with m.Elif((seq.wr_en != 0) if not cfg.vxm_serial else seq.activations.valid):
            m.d.sync += wrote.eq(1)
        self.cover(m, seq.done & wrote, "program_done")


class SequencerIssueHarness(SequencerHarness):
    """One issue per cycle and no stream on a busy bank: proved by k-induction."""
    PROPERTIES = ("issue",)


class SequencerDoneHarness(SequencerHarness):
    """``done`` only after the last write: bounded model checking."""
    PROPERTIES = ("done",)
