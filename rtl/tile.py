from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import param_bits
from lpu.contract.timing import EVENTS

from .delay import delay
from .interfaces import HostRegion, host_port_signature, vx_tag_layout
from .matmul_unit import MatmulUnit
from .sequencer import Sequencer
from .sram_banks import SramBanks
from .vector_unit_serial import vector_unit

__all__ = ["LpuTile", "PROBE_LAYOUT"]

# The observation port: one bit per unit-boundary event (``lpu.contract.timing.EVENTS``), named
# as ``model.tile.Timing`` names the event's cycle list. ``vx_reads`` is seen at the VXM's input (pass 0), which is
# ``acc_read_latency`` after the accumulator read the model predicts.
PROBE_LAYOUT = data.StructLayout({name: 1 for name in EVENTS})


class LpuTile(wiring.Component):
    """The LPU tile: SRAM banks (MEM), the matrix unit (MXM), the vector unit (VXM), the
    parameter memory and the sequencer, with a host port.

    ``host`` is :func:`~rtl.interfaces.host_port_signature`, flipped: one access per cycle,
    only while not ``busy``; accesses while busy are ignored so a running program can never
    be corrupted. The counters hold the last run's figures. ``probe`` (:data:`PROBE_LAYOUT`)
    is for testbench monitors only; unconnected on a board, synthesis removes it.
    """

    def __init__(self, config):
        self.config = config
        super().__init__({
            "host": In(host_port_signature(config)),
            "probe": Out(PROBE_LAYOUT),
            # the stream links of a chip (``rtl.chip``); a lone tile leaves them idle
            "link_in_valid": In(1), "link_in_data": In(config.word_bits),
            "link_out_valid": Out(1), "link_out_data": Out(config.word_bits),
        })

    def elaborate(self, platform):
        cfg = self.config
        L, HB = cfg.lanes, cfg.host_data_bits
        host = self.host
        m = Module()
        m.submodules.seq = seq = Sequencer(cfg)
        m.submodules.mxm = mxm = MatmulUnit(cfg)
        m.submodules.vxm = vxm = vector_unit(cfg, vx_tag_layout(cfg))
        m.submodules.mem = mem = SramBanks(cfg)

        idle = ~seq.busy
        host_w = host.we & idle
        host_r = host.re & idle
        m.d.comb += [host.busy.eq(seq.busy), host.done.eq(seq.done), seq.start.eq(host.start)]

        # ---- banks: streams from the sequencer, writes from the VXM or the host --------
        for b in range(cfg.banks):
            bank = mem.bank[b]
            m.d.comb += [
                bank.rd_start.eq(seq.bank_start[b]), bank.rd_base.eq(seq.bank_base),
                bank.rd_stride.eq(seq.bank_stride), bank.rd_count.eq(seq.bank_count),
                bank.rd_addr.eq(host.addr),
                seq.bank_busy[b].eq(bank.rd_busy), seq.bank_busy_next[b].eq(bank.rd_busy_next),
                seq.bank_busy_next2[b].eq(bank.rd_busy_next2),
                seq.bank_valid[b].eq(bank.o_valid),
                seq.bank_data[b].eq(bank.o_data), bank.wr_mask.eq(-1),
            ]
            # the program's writes select the word; the host's take the port when it has
            # none. The same writes as the host's first (a program writes only while busy,
            # when the host's are ignored), but ``busy`` reaches only the write enable, not
            # the select of the word's 80 bits (the ULX3S's critical path at 81.5 MHz:
            # ``busy``, three LUTs, then 5.9 ns of routing to the four banks' words)
            with m.If(seq.wr_en[b]):
                m.d.comb += [bank.wr_en.eq(1), bank.wr_addr.eq(seq.wr_addr[b]),
                             bank.wr_data.eq(seq.wr_data[b])]
            with m.Else():
                m.d.comb += [bank.wr_en.eq(host_w & (host.region == HostRegion.SRAM) &
                                           (host.bank == b)),
                             bank.wr_addr.eq(host.addr),
                             bank.wr_data.eq(host.wdata[:cfg.word_bits])]

        # ---- MXM ---------------------------------------------------------------------
        wiring.connect(m, seq.weights, mxm.weights)
        wiring.connect(m, seq.activations, mxm.activations)
        m.d.comb += mxm.rd_addr.eq(seq.acc_rd_addr)

        m.d.comb += [self.probe.issue.eq(seq.issue),
                     self.probe.weight_rows.eq(seq.weights.valid),
                     self.probe.activations.eq(seq.activations.valid),
                     self.probe.results.eq(mxm.r_valid),
                     self.probe.vx_reads.eq(vxm.i_valid & (vxm.i_pass == 0)),
                     self.probe.sram_writes.eq(seq.sram_write),
                     self.probe.link_sends.eq(seq.link_out_valid),
                     self.probe.rx_writes.eq(seq.rx_write),
                     seq.link_in_valid.eq(self.link_in_valid),
                     seq.link_in_data.eq(self.link_in_data),
                     self.link_out_valid.eq(seq.link_out_valid),
                     self.link_out_data.eq(seq.link_out_data)]

        # ---- parameter memory: rows of vxm_params_layout, written in parts ----------------
        parts = cfg.param_parts
        param_write = host_w & (host.region == HostRegion.PARAM)
        if cfg.vxm_serial:
            # the bit-serial VXM's own memory, which it reads a part at a time; a row's
            # number comes with its accumulator row
            m.d.comb += [vxm.param_we.eq(param_write), vxm.param_row.eq(host.addr),
                         vxm.param_part.eq(host.part), vxm.param_wdata.eq(host.wdata),
                         vxm.i_prow.eq(delay(m, seq.param_rd_addr, cfg.acc_read_latency, "prow"))]
        elif cfg.param_depth == 1:
            # one row: a register, read as it is. The host writes it only while the tile is
            # idle and the VXM reads it only while a program runs, so every read in a run
            # sees what the memory's read port (and its register) would: one row of
            # flip-flops instead of a two-row memory and a read register (the UP5K's cells)
            row = Signal(parts * HB, name="param_row")
            for part in range(parts):
                with m.If(param_write & (host.part == part)):
                    m.d.sync += row.word_select(part, HB).eq(host.wdata)
            params = row[:param_bits(L)]
        else:
            m.submodules.params = pmem = Memory(shape=parts * HB, depth=cfg.param_rows, init=[])
            pw = pmem.write_port(granularity=HB)
            pr = pmem.read_port(transparent_for=())
            # the host's write reaches the memory through a register, a cycle later: it
            # writes only while the tile is idle, and a run reads its first row cycles after
            # its start, so every read sees the same rows. ``busy`` reaches one flip-flop, not
            # the write enables of a memory of LUTs spread over the chip (the ULX3S's critical
            # path at 78.4 MHz: 11.4 of its 12.8 ns routing)
            w_en, w_addr, w_data = Signal(parts), Signal.like(host.addr), Signal(HB)
            m.d.sync += [w_en.eq(Mux(param_write, 1 << host.part, 0)), w_addr.eq(host.addr),
                         w_data.eq(host.wdata)]
            m.d.comb += [pw.addr.eq(w_addr), pw.data.eq(Cat(*[w_data] * parts)),
                         pw.en.eq(w_en)]
            # a parameter row arrives with its accumulator row: acc_read_latency after the
            # read, its address registered like the accumulators' (acc_address_latency)
            a = cfg.acc_address_latency
            m.d.comb += pr.addr.eq(delay(m, seq.param_rd_addr, a, "param_rd_addr"))
            params = delay(m, pr.data[:param_bits(L)], cfg.acc_read_latency - 1 - a, "params")
        if not cfg.vxm_serial:
            m.d.comb += vxm.i_params.eq(params)

        # ---- VXM -----------------------------------------------------------------------
        m.d.comb += [
            vxm.i_valid.eq(seq.vx_valid), vxm.i_pass.eq(seq.vx_pass),
            vxm.i_tag.eq(seq.vx_tag), seq.vx_o_tag.eq(vxm.o_tag),
            vxm.i_data.eq(mxm.rd_data),
            seq.vx_o_valid.eq(vxm.o_valid),
            seq.vx_o_i8.eq(vxm.o_i8), seq.vx_o_i32.eq(vxm.o_i32),
        ]

        # ---- instruction memory writes -----------------------------------------------------
        m.d.comb += [seq.imem_we.eq(host_w & (host.region == HostRegion.IMEM)),
                     seq.imem_addr.eq(host.addr), seq.imem_data.eq(host.wdata)]

        # ---- host reads: host_read_latency later, like the banks' read ports -------------
        lat = cfg.host_read_latency
        region_d = delay(m, host.region, lat, "region_d")
        bank_d = delay(m, host.bank, lat, "bank_d")
        counter = delay(m, seq.counters.as_value().word_select(host.addr[:3], 32), lat, "counter")
        m.d.comb += host.rvalid.eq(delay(m, host_r, lat, "rvalid"))
        with m.Switch(region_d):
            with m.Case(HostRegion.SRAM):
                with m.Switch(bank_d):
                    for b in range(cfg.banks):
                        with m.Case(b):
                            m.d.comb += host.rdata.eq(mem.bank[b].o_data)
                    with m.Default():
                        m.d.comb += host.rdata.eq(0)
            with m.Case(HostRegion.COUNTER):
                m.d.comb += host.rdata.eq(counter)
            with m.Default():          # instruction and parameter memories are write-only
                m.d.comb += host.rdata.eq(0)
        return m
