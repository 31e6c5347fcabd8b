from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.isa import COUNTERS, FIELDS, INSN_BITS, Op

from .delay import delay

__all__ = ["Sequencer", "COUNTERS"]



class Sequencer(wiring.Component):
    """Runs a program from instruction memory with static timing.

    One instruction issues per cycle at most, in program order. An instruction waits only on
    conditions that depend on the program, never on data (the rules, with the cycle each
    instruction issues on, are ``model.tile.schedule``'s and ``docs/isa.md``'s):

    * ``LW`` waits for its bank's stream, the previous LW's last read, and for the last
      activation using its weight buffer to be ``lanes - 2`` cycles in (so no PE sees a
      weight change under a moving activation);
    * ``MM`` waits for its bank's stream and the previous MM's stream;
    * ``VX`` waits for the previous VX's last accumulator read, then starts reading once
      every earlier MM's accumulator updates are readable; it reads each accumulator row
      (and its parameter row) for ``vxm_passes`` cycles, one pass of the VXM each;
    * ``HALT`` waits for every unit to drain.

    The sequencer drives the bank streams, the weight and activation ports of the MXM, the
    accumulator and parameter reads of the VXM, and the SRAM writes of its results.
    """

    def __init__(self, config):
        self.config = config
        cfg = config
        L, NB = cfg.lanes, cfg.banks
        super().__init__({
            "start": In(1), "busy": Out(1), "done": Out(1),
            # instruction memory write port (host)
            "imem_we": In(1), "imem_addr": In(16), "imem_data": In(INSN_BITS),
            # banks
            "bank_start": Out(NB), "bank_base": Out(cfg.addr_bits), "bank_stride": Out(cfg.addr_bits),
            "bank_count": Out(16), "bank_busy": In(NB), "bank_valid": In(NB),
            "bank_data": In(data.ArrayLayout(cfg.word_bits, NB)),
            # MXM
            "w_valid": Out(1), "w_buf": Out(1), "w_row": Out(range(L)),
            "w_data": Out(cfg.word_bits),
            "a_valid": Out(1), "a_buf": Out(1), "a_addr": Out(cfg.acc_addr_bits),
            "a_accumulate": Out(1), "a_data": Out(cfg.word_bits),
            # VXM: accumulator and parameter reads, and the unit's input/outputs
            "acc_rd_addr": Out(cfg.acc_addr_bits), "param_rd_addr": Out(range(cfg.param_depth)),
            "vx_valid": Out(1), "vx_pass": Out(cfg.vxm_pass_bits), "vx_quant": Out(1),
            "vx_o_valid": In(1), "vx_o_quant": In(1), "vx_o_i8": In(cfg.word_bits), "vx_o_i32": In(32 * L),
            # SRAM writes of results
            "wr_en": Out(NB), "wr_addr": Out(cfg.addr_bits),
            "wr_data": Out(data.ArrayLayout(cfg.word_bits, NB)),
            # performance counters, valid while idle
            "counters": Out(data.ArrayLayout(32, len(COUNTERS))),
        })

    def elaborate(self, platform):
        cfg = self.config
        L, NB, A = cfg.lanes, cfg.banks, cfg.mxm_latency
        V, P = cfg.vxm_latency, cfg.vxm_passes
        m = Module()

        # ---- fetch and decode ----------------------------------------------------------
        m.submodules.imem = imem = Memory(shape=INSN_BITS, depth=cfg.imem_depth, init=[])
        iw = imem.write_port()
        ir = imem.read_port(transparent_for=(iw,))
        m.d.comb += [iw.en.eq(self.imem_we & ~self.busy), iw.addr.eq(self.imem_addr),
                     iw.data.eq(self.imem_data)]
        pc = Signal(16)
        busy = Signal()
        done = Signal()
        m.d.comb += [self.busy.eq(busy), self.done.eq(done)]
        f = {name: ir.data[lsb:lsb + width] for name, (lsb, width) in FIELDS.items()}
        issue = Signal()
        m.d.comb += ir.addr.eq(Mux(busy, Mux(issue, pc + 1, pc), 0))

        # ---- unit state: down-counters that reach 0 on the cycle a condition holds ------
        cw = 24
        lw_cnt = Signal(cw)           # 0: previous LW's rows all written; <=1: LW may issue
        mm_cnt = Signal(cw)           # 0: MM stream done
        acc_cnt = Signal(cw)          # 0: every issued activation's update is readable
        guard = [Signal(cw, name=f"guard{b}") for b in (0, 1)]  # 0: LW into buffer b allowed
        vx_wait = Signal(cw)          # VX: cycles before its first accumulator read
        vx_left = Signal(cw)          # VX: accumulator rows left
        vx_pass = Signal(cfg.vxm_pass_bits)   # VX: pass of the row being read
        last_pass = vx_pass == P - 1
        vx_cnt = Signal(cw)           # 0: every VX write done
        for c in (lw_cnt, mm_cnt, acc_cnt, *guard, vx_cnt):
            with m.If(c != 0):
                m.d.sync += c.eq(c - 1)

        bank_sel = f["bank"][:max(1, (NB - 1).bit_length())]
        bank_busy = self.bank_busy.bit_select(bank_sel, 1)
        op = f["op"]
        can = Signal()
        with m.Switch(op):
            with m.Case(Op.LW):
                m.d.comb += can.eq(~bank_busy & (lw_cnt <= 1) &
                                   Mux(f["wbuf"], guard[1] == 0, guard[0] == 0))
            with m.Case(Op.MM):
                m.d.comb += can.eq(~bank_busy & (mm_cnt == 0))
            with m.Case(Op.VX):
                m.d.comb += can.eq((vx_wait == 0) &
                                   ((vx_left == 0) | ((vx_left == 1) & last_pass)))
            with m.Case(Op.HALT):
                m.d.comb += can.eq((lw_cnt == 0) & (mm_cnt == 0) & (acc_cnt == 0) & (vx_cnt == 0))
            with m.Default():
                m.d.comb += can.eq(1)    # unknown opcodes are rejected by the assembler
        m.d.comb += issue.eq(busy & can)

        with m.If(self.start & ~busy):
            m.d.sync += [busy.eq(1), done.eq(0), pc.eq(0)]
        with m.Elif(issue):
            m.d.sync += pc.eq(pc + 1)
            with m.If(op == Op.HALT):
                m.d.sync += [busy.eq(0), done.eq(1)]

        # ---- bank streams: LW and MM start them; each bank remembers its reader --------
        is_lw = issue & (op == Op.LW)
        is_mm = issue & (op == Op.MM)
        is_vx = issue & (op == Op.VX)
        owner_mm = Signal(NB)         # 1: the bank's stream feeds activations, 0: weights
        for b in range(NB):
            hit = (is_lw | is_mm) & (bank_sel == b)
            m.d.comb += self.bank_start[b].eq(hit)
            with m.If(hit):
                m.d.sync += owner_mm[b].eq(is_mm)
        m.d.comb += [self.bank_base.eq(f["base"]), self.bank_stride.eq(f["stride"]),
                     self.bank_count.eq(Mux(op == Op.LW, L, f["count"]))]

        # LW: rows arrive from its bank one per cycle and go to the weight port
        lw_bank = Signal.like(bank_sel)
        lw_buf = Signal()
        lw_row = Signal(range(L))
        w_valid = Signal()
        m.d.comb += [
            w_valid.eq((self.bank_valid & ~owner_mm).bit_select(lw_bank, 1)),
            self.w_valid.eq(w_valid), self.w_buf.eq(lw_buf), self.w_row.eq(lw_row),
            self.w_data.eq(self.bank_data[lw_bank]),
        ]
        with m.If(w_valid):
            m.d.sync += lw_row.eq(lw_row + 1)
        with m.If(is_lw):
            m.d.sync += [lw_bank.eq(bank_sel), lw_buf.eq(f["wbuf"]), lw_row.eq(0), lw_cnt.eq(L)]

        # MM: activations arrive from its bank and enter the array with their tag
        mm_bank = Signal.like(bank_sel)
        mm_buf = Signal()
        mm_addr = Signal(cfg.acc_addr_bits)
        mm_accumulate = Signal()
        a_valid = Signal()
        m.d.comb += [
            a_valid.eq((self.bank_valid & owner_mm).bit_select(mm_bank, 1)),
            self.a_valid.eq(a_valid), self.a_buf.eq(mm_buf), self.a_addr.eq(mm_addr),
            self.a_accumulate.eq(mm_accumulate), self.a_data.eq(self.bank_data[mm_bank]),
        ]
        with m.If(a_valid):
            m.d.sync += mm_addr.eq(mm_addr + 1)
        count = f["count"]
        with m.If(is_mm):
            m.d.sync += [
                mm_bank.eq(bank_sel), mm_buf.eq(f["wbuf"]), mm_addr.eq(f["acc_base"]),
                mm_accumulate.eq(f["accumulate"]),
                mm_cnt.eq(count - 1), acc_cnt.eq(count + A + 1),
            ]
            with m.If(f["wbuf"]):
                m.d.sync += guard[1].eq(count + L - 3)
            with m.Else():
                m.d.sync += guard[0].eq(count + L - 3)

        # VX: wait, then read each accumulator row (and the parameter row) for P cycles
        vx_acc = Signal(cfg.acc_addr_bits)
        vx_prow = Signal(range(cfg.param_depth))
        vx_quant = Signal()
        vx_bank = Signal.like(bank_sel)
        vx_out = Signal(cfg.addr_bits)
        vx_stride = Signal(cfg.addr_bits)
        reading = Signal()
        m.d.comb += [reading.eq((vx_wait == 0) & (vx_left != 0)),
                     self.acc_rd_addr.eq(vx_acc), self.param_rd_addr.eq(vx_prow)]
        with m.If(vx_wait != 0):
            m.d.sync += vx_wait.eq(vx_wait - 1)
        with m.Elif(reading):
            m.d.sync += vx_pass.eq(vx_pass + 1)
            with m.If(last_pass):
                m.d.sync += [vx_pass.eq(0), vx_left.eq(vx_left - 1), vx_acc.eq(vx_acc + 1),
                             vx_out.eq(vx_out + vx_stride)]
        first = Mux(acc_cnt > 1, acc_cnt, 1)      # cycles from issue to the first read
        with m.If(is_vx):
            m.d.sync += [
                vx_wait.eq(first - 1), vx_left.eq(count), vx_acc.eq(f["acc_base"]),
                vx_prow.eq(f["prow"]), vx_quant.eq(f["quant"]), vx_bank.eq(bank_sel),
                vx_out.eq(f["base"]), vx_stride.eq(f["stride"]),
                vx_pass.eq(0), vx_cnt.eq(first + ((count - 1) << (P.bit_length() - 1)) + V + 1),
            ]
        # the accumulator and parameter rows arrive one cycle after the read
        m.d.comb += [self.vx_valid.eq(delay(m, reading, 1, "vxv")),
                     self.vx_pass.eq(delay(m, vx_pass, 1, "vxp")),
                     self.vx_quant.eq(delay(m, vx_quant, 1, "vxq"))]
        # the VXM's result is written to SRAM on the cycle it leaves the unit
        out_addr = delay(m, vx_out, 1 + V, "vxa")
        out_bank = delay(m, vx_bank, 1 + V, "vxb")
        m.d.comb += self.wr_addr.eq(out_addr)
        for b in range(NB):
            # int8: one word to the instruction's bank; int32: byte plane p of every lane to
            # bank (bank + p) % banks, all four in the same cycle
            plane = Signal(2, name=f"plane{b}")
            hit8 = out_bank == b
            hit32 = Signal(name=f"hit32_{b}")
            cases = []
            for p in range(4):
                cases.append(((out_bank + p) % NB == b, p))
            m.d.comb += hit32.eq(Cat(*[c for c, _ in cases]).any())
            for c, p in reversed(cases):
                with m.If(c):
                    m.d.comb += plane.eq(p)
            i32_bytes = Cat(*[self.vx_o_i32.word_select(n, 32).word_select(plane, 8) for n in range(L)])
            with m.If(self.vx_o_valid):
                m.d.comb += [
                    self.wr_en[b].eq(Mux(self.vx_o_quant, hit8, hit32)),
                    self.wr_data[b].eq(Mux(self.vx_o_quant, self.vx_o_i8, i32_bytes)),
                ]

        # ---- performance counters --------------------------------------------------------
        cnt = {name: Signal(32, name=f"count_{name}") for name in COUNTERS}
        with m.If(self.start & ~busy):
            m.d.sync += [c.eq(0) for c in cnt.values()]
        with m.Elif(busy):
            m.d.sync += [
                cnt["cycles"].eq(cnt["cycles"] + 1),
                cnt["mxm_busy"].eq(cnt["mxm_busy"] + a_valid),
                cnt["lw_rows"].eq(cnt["lw_rows"] + w_valid),
                cnt["vx_rows"].eq(cnt["vx_rows"] + (reading & last_pass)),
                cnt["stalls"].eq(cnt["stalls"] + ~issue),
                cnt["insns"].eq(cnt["insns"] + issue),
            ]
        m.d.comb += [self.counters[i].eq(cnt[name]) for i, name in enumerate(COUNTERS)]
        return m
