from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import Region, param_bits, param_parts

from .matmul_unit import MatmulUnit
from .sequencer import Sequencer
from .sram_bank import SramBank
from .vector_unit import VectorUnit

__all__ = ["LpuTile", "PROBE_LAYOUT"]

# The observation port: one bit per unit-boundary event, named as ``model.tile.Timing`` names
# the event's cycle list. ``vx_reads`` is seen at the VXM's input (pass 0), which is
# ``acc_read_latency`` after the accumulator read the model predicts.
PROBE_LAYOUT = data.StructLayout({
    "weight_rows": 1, "activations": 1, "results": 1, "vx_reads": 1, "sram_writes": 1})


class LpuTile(wiring.Component):
    """The LPU tile: SRAM banks (MEM), the matrix unit (MXM), the vector unit (VXM), the
    parameter memory and the sequencer, with a host port.

    Host port (one access per cycle, only while not ``busy``; accesses while busy are
    ignored so a running program can never be corrupted):

    * ``h_we`` with ``h_region``/``h_bank``/``h_addr``/``h_part``/``h_wdata``: write.
    * ``h_re`` with the same address: ``h_rdata`` holds the value one cycle later, with
      ``h_rvalid``.
    * ``start``: run the program from address 0; ``busy`` is high from the next cycle until
      the cycle ``HALT`` issues; ``done`` is high from then until the next ``start``. The
      counters hold the last run's figures.
    """

    def __init__(self, config):
        self.config = config
        cfg = config
        super().__init__({
            "h_we": In(1), "h_re": In(1), "h_region": In(2), "h_bank": In(4), "h_addr": In(16),
            "h_part": In(2), "h_wdata": In(cfg.host_data_bits),
            "h_rdata": Out(cfg.host_data_bits), "h_rvalid": Out(1),
            "start": In(1), "busy": Out(1), "done": Out(1),
            # observation only (testbench monitors); unconnected on a board, so synthesis
            # removes it
            "probe": Out(PROBE_LAYOUT),
        })

    @property
    def param_parts(self):
        return param_parts(self.config.lanes, self.config.host_data_bits)

    def elaborate(self, platform):
        cfg = self.config
        L, NB, HB = cfg.lanes, cfg.banks, cfg.host_data_bits
        m = Module()
        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.mxm = mxm = MatmulUnit(cfg)
        m.submodules.vxm = vxm = VectorUnit(cfg)
        banks = []
        for b in range(NB):
            bank = SramBank(cfg)
            m.submodules[f"bank{b}"] = bank
            banks.append(bank)

        idle = ~seq.busy
        host_w = self.h_we & idle
        host_r = self.h_re & idle
        m.d.comb += [self.busy.eq(seq.busy), self.done.eq(seq.done), seq.start.eq(self.start)]

        # ---- banks: streams from the sequencer, writes from the VXM or the host --------
        for b, bank in enumerate(banks):
            m.d.comb += [
                bank.rd_start.eq(seq.bank_start[b]), bank.rd_base.eq(seq.bank_base),
                bank.rd_stride.eq(seq.bank_stride), bank.rd_count.eq(seq.bank_count),
                bank.rd_addr.eq(self.h_addr),
                seq.bank_busy[b].eq(bank.rd_busy), seq.bank_valid[b].eq(bank.o_valid),
                seq.bank_data[b].eq(bank.o_data),
            ]
            with m.If(host_w & (self.h_region == Region.SRAM) & (self.h_bank == b)):
                m.d.comb += [bank.wr_en.eq(1), bank.wr_addr.eq(self.h_addr),
                             bank.wr_data.eq(self.h_wdata[:cfg.word_bits]),
                             bank.wr_mask.eq(-1)]
            with m.Else():
                m.d.comb += [bank.wr_en.eq(seq.wr_en[b]), bank.wr_addr.eq(seq.wr_addr),
                             bank.wr_data.eq(seq.wr_data[b]), bank.wr_mask.eq(-1)]

        # ---- MXM ---------------------------------------------------------------------
        m.d.comb += [
            mxm.w_valid.eq(seq.w_valid), mxm.w_buf.eq(seq.w_buf), mxm.w_row.eq(seq.w_row),
            mxm.w_data.eq(seq.w_data),
            mxm.a_valid.eq(seq.a_valid), mxm.a_buf.eq(seq.a_buf), mxm.a_addr.eq(seq.a_addr),
            mxm.a_accumulate.eq(seq.a_accumulate), mxm.a_data.eq(seq.a_data),
            mxm.rd_addr.eq(seq.acc_rd_addr),
        ]

        m.d.comb += [self.probe.weight_rows.eq(seq.w_valid),
                     self.probe.activations.eq(seq.a_valid),
                     self.probe.results.eq(mxm.r_valid),
                     self.probe.vx_reads.eq(vxm.i_valid & (vxm.i_pass == 0)),
                     self.probe.sram_writes.eq(vxm.o_valid)]

        # ---- parameter memory: rows of vxm_params_layout, written in host-sized parts ----
        parts = self.param_parts
        m.submodules.params = pmem = Memory(shape=parts * HB, depth=cfg.param_depth, init=[])
        pw = pmem.write_port(granularity=HB)
        pr = pmem.read_port(transparent_for=())
        m.d.comb += [pw.addr.eq(self.h_addr), pw.data.eq(Cat(*[self.h_wdata] * parts)),
                     pr.addr.eq(seq.param_rd_addr)]
        with m.If(host_w & (self.h_region == Region.PARAM)):
            m.d.comb += pw.en.eq(1 << self.h_part)

        # ---- VXM -----------------------------------------------------------------------
        m.d.comb += [
            vxm.i_valid.eq(seq.vx_valid), vxm.i_pass.eq(seq.vx_pass), vxm.i_quant.eq(seq.vx_quant),
            vxm.i_data.eq(mxm.rd_data),
            vxm.i_params.eq(pr.data[:param_bits(L)]),
            seq.vx_o_valid.eq(vxm.o_valid), seq.vx_o_quant.eq(vxm.o_quant),
            seq.vx_o_i8.eq(vxm.o_i8), seq.vx_o_i32.eq(vxm.o_i32),
        ]

        # ---- instruction memory writes -----------------------------------------------------
        m.d.comb += [seq.imem_we.eq(host_w & (self.h_region == Region.IMEM)),
                     seq.imem_addr.eq(self.h_addr), seq.imem_data.eq(self.h_wdata)]

        # ---- host reads: one cycle later, like the banks' read ports ---------------------
        region_d = Signal(2)
        bank_d = Signal(4)
        counter = Signal(32)
        m.d.sync += [self.h_rvalid.eq(host_r), region_d.eq(self.h_region), bank_d.eq(self.h_bank),
                     counter.eq(seq.counters.as_value().word_select(self.h_addr[:3], 32))]
        with m.Switch(region_d):
            with m.Case(Region.SRAM):
                with m.Switch(bank_d):
                    for b, bank in enumerate(banks):
                        with m.Case(b):
                            m.d.comb += self.h_rdata.eq(bank.o_data)
                    with m.Default():
                        m.d.comb += self.h_rdata.eq(0)
            with m.Case(Region.COUNTER):
                m.d.comb += self.h_rdata.eq(counter)
            with m.Default():          # instruction and parameter memories are write-only
                m.d.comb += self.h_rdata.eq(0)
        return m
