from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import COUNTERS, FIELDS, INSN_BITS
from lpu.contract.timing import Rules

from .delay import delay
from .primitives import replicated_register
from .interfaces import (Opcode, acc_tag_layout, activation_port_signature, vx_tag_layout,
                         weight_port_signature)

__all__ = ["Sequencer", "COUNTERS"]


class Sequencer(wiring.Component):
    """Runs a program from instruction memory with static timing.

    One instruction issues per cycle at most, in program order. An instruction waits only on
    conditions that depend on the program, never on data: the rules of
    :class:`lpu.contract.timing.Rules` (stated in ``docs/isa.md``), which the golden model
    (``model.tile.schedule``) predicts with. Each rule is a down-counter loaded on issue.

    * ``LW`` waits for its bank's stream, the previous LW's rows, and the weight guard of the
      last MM using its buffer (no PE sees a weight change under a moving activation);
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
            "issue": Out(1),            # an instruction issues this cycle (for monitors)
            # instruction memory write port (host)
            "imem_we": In(1), "imem_addr": In(16), "imem_data": In(INSN_BITS),
            # banks
            "bank_start": Out(NB), "bank_base": Out(cfg.addr_bits), "bank_stride": Out(cfg.addr_bits),
            "bank_count": Out(cfg.count_bits), "bank_busy": In(NB), "bank_busy_next": In(NB),
            "bank_busy_next2": In(NB), "bank_valid": In(NB),
            "bank_data": In(data.ArrayLayout(cfg.word_bits, NB)),
            # MXM
            "weights": Out(weight_port_signature(cfg)),
            "activations": Out(activation_port_signature(cfg, acc_tag_layout(cfg))),
            # VXM: accumulator and parameter reads, and the unit's input/outputs
            "acc_rd_addr": Out(cfg.acc_addr_bits), "param_rd_addr": Out(range(cfg.param_rows)),
            "vx_valid": Out(1), "vx_pass": Out(cfg.vxm_pass_bits),
            "vx_tag": Out(vx_tag_layout(cfg)), "vx_o_tag": In(vx_tag_layout(cfg)),
            "vx_o_valid": In(1), "vx_o_i8": In(cfg.word_bits), "vx_o_i32": In(32 * L),
            # SRAM writes of results
            "wr_en": Out(NB), "wr_addr": Out(data.ArrayLayout(cfg.addr_bits, NB)),
            "wr_data": Out(data.ArrayLayout(cfg.word_bits, NB)),
            # performance counters, valid while idle
            "counters": Out(data.ArrayLayout(32, len(COUNTERS))),
            # stream links of a chip (rtl.chip): vectors from the west, VX rows to the east
            "link_in_valid": In(1), "link_in_data": In(cfg.word_bits),
            "link_out_valid": Out(1), "link_out_data": Out(cfg.word_bits),
            # events for monitors: a VX row or a received vector written to SRAM
            "sram_write": Out(1), "rx_write": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        # each registered flag and the compare it stands for, with when they must agree:
        # ``formal.sequencer`` proves they always do
        self.flag_invariants = {}
        self._platform = platform
        busy, op, field, issue = self._fetch(m)
        bank_sel = field["bank"]
        units = self._unit_state(m)
        ready = self._issue_rules(m, op, field, bank_sel, units)
        m.d.comb += [issue.eq(busy & self._fetched & ready), self.issue.eq(issue)]
        busy_next = Signal(name="busy_d")
        m.d.comb += busy_next.eq(busy)
        with m.If(self.start & ~busy):
            m.d.comb += busy_next.eq(1)
            m.d.sync += [self._done.eq(0), self._pc.eq(0)]
        with m.Elif(issue):
            m.d.sync += self._pc.eq(self._pc + 1)
            with m.If(op[Opcode.HALT]):
                m.d.comb += busy_next.eq(0)
                m.d.sync += self._done.eq(1)
        m.d.sync += busy.eq(busy_next)
        # the ``busy`` port (the host port, the LED) is a flip-flop of its own, the same on
        # every cycle, so that the sequencer's stays by its issue logic (pulled across the
        # chip by those loads, the issue's clock enable of it was the ULX3S's critical path
        # at 78.2 MHz, 12.8 ns)
        m.d.comb += self.busy.eq(replicated_register(m, busy_next, 1, "busy_port", platform)[0])
        self.flag_invariants["busy_port"] = (self.busy == busy, 1)
        self._wait_compare(m, busy, op, field, issue, units)
        self.flag_invariants["received"] = (units["received"] == (units["rx_left"] == 0), 1)
        issued = {o: issue & op[o] for o in (Opcode.LW, Opcode.MM, Opcode.VX, Opcode.RX)}
        started = self._stream_starts(m, issued, field, bank_sel)
        self._bank_streams(m, issued, field, bank_sel, op, started)
        self._receive(m, issued[Opcode.RX], field, bank_sel, units)
        w_valid = self._load_weights(m, issued[Opcode.LW], units, started)
        a_valid = self._stream_activations(m, issued[Opcode.MM], field, units, started)
        vx_row_done = self._vector_reads(m, issued[Opcode.VX], field, bank_sel, units)
        self._write_back(m)
        self._counters(m, busy, w_valid=w_valid, a_valid=a_valid, vx_row_done=vx_row_done)
        return m

    def _wait_compare(self, m, busy, op, field, issue, units):
        """WAIT's ``since_wait`` (cycles since the previous WAIT issued, or the run started,
        saturating at the largest count) and ``wait_ok``: ``since_wait >= count`` of the
        instruction being decoded, a register computed the cycle before (a 16-bit compare
        was the head of the ULX3S's critical path into issue). It compares the count with
        ``since_inc``, ``since_wait``'s next value when no WAIT issues: a counter of its own,
        one ahead, so that no incrementer is before the compare (``since_wait`` + 1, then
        the compare, was the ``tiny`` tile's critical path at a 100 MHz target, 10.8 ns;
        ``since_wait`` itself is left to the invariants, and synthesis removes it). The
        outcomes are computed from flip-flops or the instruction memory's output (for the
        instruction about to be loaded); issue only selects one (``_next``: from the read
        port, or with ``read_registers`` one compare for every queue slot). Cycle
        for cycle the same as comparing directly."""
        since, since_inc, wait_ok = units["since_wait"], units["since_inc"], units["wait_ok"]
        top = (1 << len(since)) - 1
        with m.If(self.start & ~busy):
            m.d.sync += [since.eq(0), since_inc.eq(1)]
        with m.Elif(issue & op[Opcode.WAIT]):
            m.d.sync += [since.eq(1), since_inc.eq(2)]
        with m.Else():
            with m.If(since != top):
                m.d.sync += since.eq(since + 1)
            with m.If(since_inc != top):
                m.d.sync += since_inc.eq(since_inc + 1)
        self.flag_invariants["since_inc"] = (since_inc == Mux(since == top, top, since + 1), 1)
        self.flag_invariants["wait_ok"] = (wait_ok == (since >= field["wait"]),
                                           busy & self._fetched)
        # the compare of every slot's count (with the queue), selected for the instruction
        # decoded now and for the one being loaded
        def reached(f):
            return since_inc >= f["wait"]
        with m.If(self._loading):
            m.d.sync += wait_ok.eq(Mux(issue & op[Opcode.WAIT],
                                       self._next(lambda f: f["wait"] <= 1), self._next(reached)))
        with m.Else():
            m.d.sync += wait_ok.eq(self._next(reached, ahead=0))

    # counters count down to 0, the cycle a rule's condition holds; a rule ``d`` cycles after
    # the load cycle ``i`` is loaded as ``d - 1`` (the load lands on ``i + 1``)
    def counter_widths(self):
        """Width of each rule counter: the largest value any legal program loads into it
        (``count <= acc_depth``; a VX waits at most for a full accumulator's MM), except the
        two a VX loads (below)."""
        rules, depth = Rules(self.config), self.config.acc_depth
        acc = rules.acc_ready(depth) - 1
        most = {"lw": rules.lw_done - 1, "mm": rules.mm_stream(depth) - 1, "acc": acc,
                "guard": rules.weight_guard(depth) - 1, "vx_left": depth}
        widths = {name: max(v, 1).bit_length() for name, v in most.items()}
        # a VX loads its counters from the acc counter's value without a compare of the sum
        # (``_vector_reads``): they hold whatever the acc counter's width and the count field
        # can give, so that no load wraps to 0, legal program or not
        full_acc = (1 << widths["acc"]) - 1
        widths["vx_wait"] = max(full_acc - 1, 1).bit_length()
        widths["vx"] = (full_acc + rules.vx_done((1 << self.config.count_bits) - 1)
                        - 1).bit_length()
        return widths

    def _fetch(self, m):
        """Instruction memory, program counter and decode. Returns (busy, a flag for each
        opcode, fields, issue): ``issue`` is driven by the caller."""
        cfg = self.config
        # with ``read_registers``, a read that meets a write of its address is don't-care to
        # synthesis (below)
        m.submodules.imem = imem = Memory(shape=INSN_BITS, depth=cfg.imem_depth, init=[],
                                          attrs={"no_rw_check": 1} if cfg.read_registers else None)
        iw = imem.write_port()
        m.d.comb += [iw.en.eq(self.imem_we & ~self.busy), iw.addr.eq(self.imem_addr),
                     iw.data.eq(self.imem_data)]
        if cfg.read_registers:
            # the host writes only while the tile is idle, and the queue's first read is on
            # the run's first cycle (``_instruction_queue``), after every write: a read never
            # meets a write of its address. So the port is an asynchronous read and a
            # register, which Yosys's ``memory_dff`` merges into a block RAM port with
            # don't-care collisions (the memory's ``no_rw_check``). A synchronous read port
            # reads the old word, for which Yosys built a copy of every write (96 flip-flops)
            # and a compare of the read address (then the issue decision's) with the
            # write's, behind ``issue`` and before the read's register: the worst path of the
            # ULX3S's 8-lane tile at 100 MHz, 13.5 ns (with the port transparent, of the
            # ``tiny`` tile, 10.9 ns). Without ``read_registers`` (the UP5K, where cells
            # count, not time) the port is transparent
            ir = imem.read_port(domain="comb")
            read = Signal(INSN_BITS, name="imem_data", reset_less=True)
            m.d.sync += read.eq(ir.data)
        else:
            ir = imem.read_port(transparent_for=(iw,))
            read = ir.data
        self._pc = pc = Signal(range(cfg.imem_depth + 1))   # HALT's issue leaves it past the end
        busy = Signal()
        self._done = Signal()
        m.d.comb += self.done.eq(self._done)
        insn = Signal(INSN_BITS, name="insn")
        field = self._fields(insn)
        issue = Signal()
        self._fetched = fetched = Signal(name="fetched")
        if cfg.read_registers:
            self._instruction_queue(m, busy, insn, issue, ir, read)
        else:
            # the PC's instruction is decoded from a register (``fetch_latency``: it is
            # loaded on the run's first cycle), not from the block RAM's output; the read
            # port runs one instruction ahead (while idle it reads instruction 0)
            self._loading = busy & (~fetched | issue)
            self._next_slots = [[insn], [read]]
            with m.If(self._loading):
                m.d.sync += insn.eq(read)
            m.d.comb += ir.addr.eq(Mux(busy, Mux(issue, pc + 2, pc + 1), 0))
        with m.If(~busy):
            m.d.sync += fetched.eq(0)
        with m.Elif(self._loading):
            m.d.sync += fetched.eq(1)
        # the opcode, the two fields the issue rules read and a VX's drain time are decoded
        # as the instruction is loaded: a flag an opcode, so that the rules and what issue
        # does start at flip-flops, not at a compare of ``op`` (a LUT level of the ULX3S's
        # critical path); the drain time, so that a VX's load of its counter is one add
        # (the count's, then the acc counter's, were the ``tiny`` tile's at 100 MHz, 12.1 ns)
        is_op = {o: Signal(name=f"is_{o.name.lower()}") for o in Opcode}
        early = {"wbuf": lambda f: f["wbuf"], "fence": lambda f: f["fence"],
                 "vx_done": lambda f: Rules(cfg).vx_done(f["count"]),
                 "stream_long": lambda f: self._stream_count(f) > 1}
        self._early = {name: Signal(Value.cast(value(field)).shape(), name=f"early_{name}")
                       for name, value in early.items()}
        decoded = [(flag, self._next(lambda f, o=o: f["op"] == o.value), field["op"] == o.value)
                   for o, flag in is_op.items()]
        decoded += [(self._early[name], self._next(value), value(field))
                    for name, value in early.items()]
        for flag, _, now in decoded:
            self.flag_invariants[flag.name] = (flag == now, fetched)
        with m.If(self._loading):
            m.d.sync += [flag.eq(value) for flag, value, _ in decoded]
        return busy, is_op, field, issue

    def _next(self, fn, ahead=1):
        """``fn`` of the fields of the instruction being loaded (``_loading``), or with
        ``ahead`` 0 of the one decoded now: of the read port's word or the instruction
        register, or with the queue, of every slot's, selected by ``rd`` from the slots
        ``ahead`` after it: the decode does not wait for the select, and no adder
        (``rd + 1``) is before it (the select, then a WAIT's 16-bit compare or a stream's
        length, were the ULX3S ``tiny`` tile's paths at 100 MHz, 10.3 to 11.2 ns)."""
        words = self._next_slots[ahead]
        values = [fn(self._fields(word)) for word in words]
        return values[0] if len(values) == 1 else Array(values)[self._next_select]

    IQ_DEPTH = 4    # the instruction queue's slots: the one decoded, and three more

    def _instruction_queue(self, m, busy, insn, issue, ir, read):
        """With ``read_registers``: the instruction memory fills a queue of the next
        instructions in program order whenever it has room, and the decoded instruction is
        the queue's slot ``rd`` (``insn``); issue only moves ``rd`` on. Neither the read
        address nor a queue slot waits for the issue decision (their clock enables, and the
        read address, were the ULX3S's 8-lane critical paths at 100 MHz: 96 flip-flops of
        the next instruction, 11.9 to 13.3 ns). The first read is on the run's first cycle,
        so it follows any write of the host's (while idle, up to the start's cycle) and the
        block RAM's word goes straight into a slot (a register of a write of instruction 0
        with the start, and its select before the slots, stood in for the read's
        transparency: the ULX3S ``tiny`` tile's and the 8-lane tile's paths at 100 MHz, the
        block RAM's 5.6 ns clock-to-output and the select, 10.0 to 10.8 ns). The queue is
        never empty when an instruction is loaded, so the timing is that of a register of
        the next instruction's: ``fetch_latency`` 3 (the first instruction is read on the
        run's first cycle, arrives on the second and is loaded on the third; three slots
        ahead and the read in flight keep it ahead of one issue a cycle; ``formal.sequencer``
        proves it)."""
        cfg, N = self.config, self.IQ_DEPTH
        slots = Array(Signal(INSN_BITS, name=f"iq{i}") for i in range(N))
        # the decoded instruction's slot, in copies (``rtl.primitives.replicated_register``):
        # one for each quarter of the decoded instruction's select, one for the rest (one
        # pair of flip-flops driving every select was routed 2.0 to 5.5 ns on the ULX3S
        # ``tiny`` tile at 100 MHz). Each is 0 after reset: ``start`` sets them, before any
        # use
        rd_next = Signal(range(N))
        rd_bits = [replicated_register(m, rd_next[b], 5, f"iq_rd{b}", self._platform)
                   for b in range(len(rd_next))]
        rd, *rd_insn = [Cat(*bits) for bits in zip(*rd_bits)]
        level = Signal(range(N), name="iq_level")   # instructions queued after the decoded
        inflight = Signal(name="iq_inflight")   # one read last cycle: its word is ``read``
        fpc = Signal(range(cfg.imem_depth), name="fetch_pc")    # the address of the next read
        first = delay(m, self.start & ~busy, cfg.fetch_latency, "iq_first")
        self._loading = first | (self._fetched & issue)
        self._next_slots = [[slots[(i + a) % N] for i in range(N)] for a in (0, 1)]
        self._next_select = rd
        quarter = -(-INSN_BITS // len(rd_insn))
        m.d.comb += insn.eq(Cat(*[Array(slot[q * quarter:(q + 1) * quarter] for slot in slots)[r]
                                  for q, r in enumerate(rd_insn)]))
        arriving = busy & inflight
        wr = (rd + 1 + level)[:len(rd)]     # where the word arriving is written: after the queued
        reading = busy & (level + inflight < N - 1)    # room for it when its word arrives
        m.d.comb += rd_next.eq(Mux(self.start & ~busy, N - 1, rd + self._loading))
        with m.If(self.start & ~busy):
            m.d.sync += [inflight.eq(0), fpc.eq(0), level.eq(0)]
        with m.Else():
            m.d.sync += [inflight.eq(reading), fpc.eq(fpc + reading),
                         level.eq(level + arriving - self._loading)]
            with m.If(arriving):
                m.d.sync += slots[wr].eq(read)
        m.d.comb += ir.addr.eq(fpc)
        self.flag_invariants["iq_ahead"] = (level != 0, self._loading & busy)
        self.flag_invariants["iq_room"] = (level + inflight <= N - 1, busy)

    def _fields(self, word):
        """The fields of an instruction word (``lpu.contract.isa.FIELDS``), each as wide as
        the instructions that use it need."""
        field = {name: word[lsb:lsb + width] for name, (lsb, width) in FIELDS.items()}
        field["rx_count"] = field["count"][:self.config.depth.bit_length()]  # RX: up to a bank
        field["wait"] = field["count"]                                 # WAIT: all 16 bits
        field["count"] = field["count"][:self.config.count_bits]     # legal counts fit
        field["bank"] = field["bank"][:self.config.bank_bits]        # and banks
        return field

    def _unit_state(self, m):
        """The down-counters of the rules (``lpu.contract.timing``), named by what they wait
        for; each reaches 0 on the cycle its condition holds."""
        w = self.counter_widths()
        units = {
            "lw": Signal(w["lw"], name="lw_cnt"),       # 0: previous LW's rows all written
            "mm": Signal(w["mm"], name="mm_cnt"),       # 0: previous MM's stream done
            "acc": Signal(w["acc"], name="acc_cnt"),    # 0: every MM update readable
            "guard": [Signal(w["guard"], name=f"guard{b}") for b in (0, 1)],  # 0: LW into b ok
            "vx": Signal(w["vx"], name="vx_cnt"),       # 0: every VX write landed
            "vx_wait": Signal(w["vx_wait"]),            # VX: cycles before its first read
            "vx_left": Signal(w["vx_left"]),            # VX: accumulator rows left to read
            "vx_pass": Signal(self.config.vxm_pass_bits),   # VX: pass of the row being read
            "rx_left": Signal(self.config.depth.bit_length()),  # RX: vectors still to come
            "rx_early": Signal(name="rx_early"),    # RX: LW and MM need not wait for them
            "received": Signal(name="received", init=1),    # rx_left == 0, a flip-flop
            # vx_left == 0 and vx_left == 1, flip-flops (``_vector_reads`` loads them)
            "vx_left0": Signal(name="vx_left0", init=1), "vx_left1": Signal(name="vx_left1"),
        }
        # WAIT: cycles since the previous WAIT issued (or the run started), saturating at
        # the largest count a WAIT can hold
        units["since_wait"] = Signal(FIELDS["count"][1], name="since_wait")
        units["since_inc"] = Signal(FIELDS["count"][1], name="since_inc", init=1)
        units["wait_ok"] = Signal(name="wait_ok")       # since_wait >= the WAIT's count
        units["last_pass"] = units["vx_pass"] == self.config.vxm_passes - 1
        for c in (units["lw"], units["mm"], units["acc"], *units["guard"], units["vx"]):
            with m.If(c != 0):
                m.d.sync += c.eq(c - 1)
        # the issue rules read each counter through flip-flops ``counter <= k``, computed
        # the cycle before from the count's next value (``_load`` where it is loaded), so
        # that the issue decision starts at a flip-flop, not at a compare: cycle for cycle
        # the same as comparing the counter
        rules = Rules(self.config)
        self._flags = {}
        for name, k in (("lw", 0), ("lw", rules.lw_done - rules.lw_stream), ("mm", 0),
                        ("acc", 0), ("acc", 1), ("guard0", 0), ("guard1", 0), ("vx", 0),
                        ("vx_wait", 0)):
            c = units["guard"][int(name[-1])] if name.startswith("guard") else units[name]
            flag = Signal(name=f"{name}_le{k}", init=1)         # every counter starts at 0
            m.d.sync += flag.eq(c <= k + 1)     # counting down by one, or staying at 0
            self._flags.setdefault(name, {})[k] = flag
            self.flag_invariants[f"{name}_le{k}"] = (flag == (c <= k), 1)
        return units

    def _load(self, m, counter, name, value, flags=None):
        """Load a rule counter (inside the caller's ``If``) and its flags alike: each flag
        ``value <= k``, or ``flags[k]`` where the caller knows it without the compare
        (``formal.sequencer`` proves they agree)."""
        value = Value.cast(value)[:len(counter)]           # what the counter will hold
        flags = flags or {}
        m.d.sync += [counter.eq(value),
                     *[flag.eq(flags.get(k, value <= k)) for k, flag in self._flags[name].items()]]

    def _load_count(self, m, counter, name, rule, count):
        """Load a rule counter with ``rule(count) - 1``, where the rule is ``count`` plus a
        constant ``c`` (an MM's), and its flags from the instruction's field, not from the
        sum: the counter holds ``(count + c) mod 2**w``, which is ``<= k`` exactly when the
        low ``w`` bits of ``count`` are one of ``(i - c) mod 2**w``, ``i <= k``: a few
        equality compares, no carry chain (the sum's, then the compare's, were the critical
        path of the ``tiny`` tile on the ULX3S at a 100 MHz target, 11.7 ns, 4.5 of it
        logic). The same flags as the compare for every count, legal or not."""
        c = rule(0) - 1
        assert all(rule(n) - 1 == n + c for n in (1, 2, self.config.acc_depth))
        w = len(counter)
        low = Cat(count, C(0, w))[:w]
        self._load(m, counter, name, count + c,
                   flags={k: Cat(*[low == (i - c) % (1 << w) for i in range(k + 1)]).any()
                          for k in self._flags[name]})

    def _issue_rules(self, m, op, field, bank_sel, units):
        """May the instruction at the PC issue this cycle? (``docs/isa.md``'s rules)"""
        rules = Rules(self.config)
        bank_busy = self._bank_busy_at_start(m, bank_sel)
        flags = self._flags
        # LW, MM and HALT wait until every received vector has landed (rx_done); LW and MM
        # not for an early RX's
        received = units["received"]
        landed = received | units["rx_early"]
        rule = {
            Opcode.LW: ~bank_busy & flags["lw"][rules.lw_done - rules.lw_stream] &
                       Mux(self._early["wbuf"], flags["guard1"][0], flags["guard0"][0]) & landed,
            Opcode.MM: ~bank_busy & flags["mm"][0] & landed,
            Opcode.RX: received,                       # one receive stream at a time
            # the previous VX is on its last read (rules.vx_next)
            Opcode.VX: flags["vx_wait"][0] &
                       (units["vx_left0"] | (units["vx_left1"] & units["last_pass"])),
            Opcode.WAIT: units["wait_ok"] & (received | ~self._early["fence"]),
            Opcode.HALT: flags["lw"][0] & flags["mm"][0] & flags["acc"][0] & flags["vx"][0] &
                         received,
        }
        assert rule.keys() == op.keys()
        # unknown opcodes (rejected by the assembler) issue at once
        ready = Signal()
        m.d.comb += ready.eq(Cat(*[op[o] & r for o, r in rule.items()]).any() |
                             ~Cat(*op.values()).any())
        return ready

    def _stream_starts(self, m, issued, field, bank_sel):
        """An LW's or MM's issue, and the fields its stream's words are routed with, on the
        cycle before the stream's first word is on its bank's output (registers loaded then
        route it): the routing of the previous stream's last word, due then, is not cut
        short."""
        lat = Rules(self.config).stream_word(0) - 1
        values = {"lw": issued[Opcode.LW], "mm": issued[Opcode.MM], "bank": bank_sel,
                  "wbuf": field["wbuf"], "acc_base": field["acc_base"],
                  "accumulate": field["accumulate"]}
        return {name: delay(m, v, lat, f"st_{name}") for name, v in values.items()}

    def _bank_busy_at_start(self, m, bank_sel):
        """Would a stream started now on ``bank_sel`` cut its running one short, when the
        start reaches the bank (``stream_start_latency`` - 1 cycles from now)? With the start
        registered on its way (``stream_start_latency`` 2), that is the bank's ``busy`` of
        the next cycle: ``busy_next``, or, if the previous start is the one arriving now,
        whether its count is over 1 (the start and count on their way: the ports
        :meth:`_bank_streams` drives from its registers). That answer is a flip-flop,
        ``bank_blocked``, computed the cycle before by :meth:`_bank_blocked` (the select of
        the bank and its compares were the head of the ULX3S's critical path at 79.2 MHz:
        five LUTs and the banks' flags across the chip before the issue decision)."""
        if self.config.stream_start_latency == 1:
            return self.bank_busy.bit_select(bank_sel, 1)
        self._blocked = blocked = Signal(name="bank_blocked")
        self.flag_invariants["bank_blocked"] = (
            blocked == self._still_busy(self.bank_start, self.bank_count > 1, self.bank_busy_next,
                                        bank_sel),
            self.busy & self._fetched)
        return blocked

    @staticmethod
    def _still_busy(arriving, longer, busy_later, bank):
        """Will ``bank`` stream ``k`` cycles from now (``k`` the caller's)? ``longer`` (its count ``> k``) if a
        start reaches it now (``arriving``, one bit a bank), else its flag ``busy_later``."""
        return Mux(arriving.bit_select(bank, 1), longer, busy_later.bit_select(bank, 1))

    def _stream_count(self, field, is_lw=None):
        """The words of the bank stream an LW (``lanes``) or MM (its count) starts."""
        is_lw = field["op"] == Opcode.LW.value if is_lw is None else is_lw
        return Mux(is_lw, self.config.lanes, field["count"])

    def _bank_blocked(self, m, start, bank_sel):
        """``bank_blocked`` of the next cycle, for the instruction decoded then: the one
        being loaded (``_loading``: the current one issued, or the first), whose bank's start
        may be the one this cycle's issue sends (``start``; whether its count is over 1 is
        decoded as the instruction loads, ``stream_long``), or the same one (no issue, so
        no start on its way). Each bank's ``busy_next`` of the next cycle is
        ``bank_count > 2`` for a start arriving now, else its ``busy_next2``: from
        flip-flops; the issue decision selects between the two outcomes at the end."""
        next_bank = self._next(lambda f: f["bank"])
        busy_next = Cat(*[self._still_busy(self.bank_start, self.bank_count > 2,
                                           self.bank_busy_next2, b)
                          for b in range(self.config.banks)])
        loaded = self._still_busy(start, self._early["stream_long"], busy_next, next_bank)
        m.d.sync += self._blocked.eq(Mux(self._loading, loaded, busy_next.bit_select(bank_sel, 1)))

    def _bank_streams(self, m, issued, field, bank_sel, op, started):
        """LW and MM start their bank's stream (through a register each with
        ``stream_start_latency`` 2: the issue decision reached the four banks' address
        generators across the chip, the ULX3S's critical path at 71.9 MHz, 11.7 of its 13.9
        ns routing); each bank remembers which unit it feeds."""
        cfg = self.config
        self._owner_mm = owner_mm = Signal(cfg.banks)   # 1: activations, 0: weights
        starting = issued[Opcode.LW] | issued[Opcode.MM]
        start = Cat(*[starting & (bank_sel == b) for b in range(cfg.banks)])
        count = self._stream_count(field, op[Opcode.LW])
        for b in range(cfg.banks):
            with m.If((started["lw"] | started["mm"]) & (started["bank"] == b)):
                m.d.sync += owner_mm[b].eq(started["mm"])
        if cfg.stream_start_latency == 1:
            m.d.comb += [self.bank_start.eq(start), self.bank_base.eq(field["base"]),
                         self.bank_stride.eq(field["stride"]), self.bank_count.eq(count)]
        else:
            regs = [Signal.like(port, name=f"{port.name}_q") for port in
                    (self.bank_start, self.bank_base, self.bank_stride, self.bank_count)]
            m.d.sync += [r.eq(v) for r, v in zip(regs, (start, field["base"], field["stride"],
                                                        count))]
            m.d.comb += [self.bank_start.eq(regs[0]), self.bank_base.eq(regs[1]),
                         self.bank_stride.eq(regs[2]), self.bank_count.eq(regs[3])]
            self._bank_blocked(m, start, bank_sel)

    def _receive(self, m, rx_issued, field, bank_sel, units):
        """RX: the next ``count`` vectors arriving on ``link_in`` are written to its bank at
        ``base + k*stride``, each on the cycle it arrives; one arriving with no receive stream
        open is dropped (the model refuses such programs)."""
        left = units["rx_left"]
        self._rx_bank = Signal.like(bank_sel, name="rx_bank")
        self._rx_addr = Signal(self.config.addr_bits, name="rx_addr")
        stride = Signal(self.config.addr_bits, name="rx_stride")
        self._rx_writing = Signal(name="rx_writing")
        m.d.comb += [self._rx_writing.eq(self.link_in_valid & (left != 0)),
                     self.rx_write.eq(self._rx_writing)]
        with m.If(self._rx_writing):
            m.d.sync += [self._rx_addr.eq(self._rx_addr + stride), left.eq(left - 1),
                         units["received"].eq(left == 1)]
        with m.If(rx_issued):
            m.d.sync += [self._rx_bank.eq(bank_sel), self._rx_addr.eq(field["base"]),
                         stride.eq(field["stride"]), left.eq(field["rx_count"]),
                         units["received"].eq(field["rx_count"] == 0),
                         units["rx_early"].eq(field["early"])]

    def _load_weights(self, m, lw_issued, units, started):
        """LW: rows arrive from its bank one per cycle and go to the weight port."""
        rules = Rules(self.config)
        bank = Signal.like(started["bank"], name="lw_bank")
        buf = Signal(name="lw_buf")
        row = Signal(range(self.config.lanes), name="lw_row")
        w_valid = Signal()
        m.d.comb += [
            w_valid.eq((self.bank_valid & ~self._owner_mm).bit_select(bank, 1)),
            self.weights.valid.eq(w_valid), self.weights.buf.eq(buf), self.weights.row.eq(row),
            self.weights.data.eq(self.bank_data[bank]),
        ]
        with m.If(w_valid):
            m.d.sync += row.eq(row + 1)
        with m.If(started["lw"]):
            m.d.sync += [bank.eq(started["bank"]), buf.eq(started["wbuf"]), row.eq(0)]
        with m.If(lw_issued):
            self._load(m, units["lw"], "lw", rules.lw_done - 1)
        return w_valid

    def _stream_activations(self, m, mm_issued, field, units, started):
        """MM: activations arrive from its bank and enter the array with their tag."""
        rules = Rules(self.config)
        bank = Signal.like(started["bank"], name="mm_bank")
        buf = Signal(name="mm_buf")
        addr = Signal(self.config.acc_addr_bits, name="mm_addr")
        accumulate = Signal(name="mm_accumulate")
        a_valid = Signal()
        m.d.comb += [
            a_valid.eq((self.bank_valid & self._owner_mm).bit_select(bank, 1)),
            self.activations.valid.eq(a_valid), self.activations.buf.eq(buf),
            self.activations.tag.addr.eq(addr), self.activations.tag.accumulate.eq(accumulate),
            self.activations.data.eq(self.bank_data[bank]),
        ]
        with m.If(a_valid):
            m.d.sync += addr.eq(addr + 1)
        count = field["count"]
        with m.If(started["mm"]):
            m.d.sync += [bank.eq(started["bank"]), buf.eq(started["wbuf"]),
                         addr.eq(started["acc_base"]), accumulate.eq(started["accumulate"])]
        with m.If(mm_issued):
            self._load_count(m, units["mm"], "mm", rules.mm_stream, count)
            self._load_count(m, units["acc"], "acc", rules.acc_ready, count)
            for b in (0, 1):
                with m.If(field["wbuf"] == b):
                    self._load_count(m, units["guard"][b], f"guard{b}", rules.weight_guard,
                                     count)
        return a_valid

    def _vector_reads(self, m, vx_issued, field, bank_sel, units):
        """VX: wait until every earlier update is readable, then read each accumulator row
        (and the parameter row) for ``vxm_passes`` cycles. Returns the cycle a row's last
        pass is read."""
        cfg = self.config
        wait, left, vx_pass = units["vx_wait"], units["vx_left"], units["vx_pass"]
        acc = Signal(cfg.acc_addr_bits, name="vx_acc")
        prow = Signal(range(cfg.param_rows), name="vx_prow")
        quant = Signal(name="vx_quant")
        self._vx_bank = Signal.like(bank_sel, name="vx_bank")
        self._vx_out = Signal(cfg.addr_bits, name="vx_out")
        self._vx_link = Signal(name="vx_link")
        self._vx_keep = Signal(name="vx_keep")
        stride = Signal(cfg.addr_bits, name="vx_stride")
        reading = Signal()
        # the compares of ``left`` are flip-flops, loaded with it (each of the two was three
        # LUTs of the VX's issue rule)
        left0, left1 = units["vx_left0"], units["vx_left1"]
        for flag, k in ((left0, 0), (left1, 1)):
            self.flag_invariants[flag.name] = (flag == (left == k), 1)
        m.d.comb += [reading.eq(self._flags["vx_wait"][0] & ~left0),
                     self.acc_rd_addr.eq(acc), self.param_rd_addr.eq(prow)]
        with m.If(wait != 0):
            m.d.sync += wait.eq(wait - 1)
        with m.Elif(reading):
            m.d.sync += vx_pass.eq(vx_pass + 1)
            with m.If(units["last_pass"]):
                m.d.sync += [vx_pass.eq(0), left.eq(left - 1), acc.eq(acc + 1),
                             self._vx_out.eq(self._vx_out + stride),
                             left0.eq(left1), left1.eq(left == 2)]
        # cycles from issue to the first read: the acc counter is (acc_ready - now). From
        # the acc counter's ``<= 1`` flag, not a compare, and the new counters' flags without
        # one: the first read is 1 cycle away exactly when acc <= 1, and every VX loads ``vx``
        # with more than 0 (at least the VXM's latency) (the compare, the add and the
        # compare of the sum were the ULX3S's critical path at 80.3 MHz, 12.5 ns; the
        # counters are wide enough that no load wraps: ``counter_widths``)
        acc_le1 = self._flags["acc"][1]
        first = Mux(acc_le1, 1, units["acc"])
        count = field["count"]
        with m.If(vx_issued):
            m.d.sync += [
                left.eq(count), acc.eq(field["acc_base"]),
                prow.eq(field["prow"]), quant.eq(field["quant"]), self._vx_bank.eq(bank_sel),
                self._vx_link.eq(field["link"]), self._vx_keep.eq(field["keep"]),
                self._vx_out.eq(field["base"]), stride.eq(field["stride"]), vx_pass.eq(0),
                left0.eq(count == 0), left1.eq(count == 1),
            ]
            self._load(m, wait, "vx_wait", first - 1, flags={0: acc_le1})
            self._load(m, units["vx"], "vx", first + self._early["vx_done"] - 1, flags={0: 0})
        # the accumulator and parameter rows arrive acc_read_latency after the read
        lat = cfg.acc_read_latency
        m.d.comb += [self.vx_valid.eq(delay(m, reading, lat, "vxv")),
                     self.vx_pass.eq(delay(m, vx_pass, lat, "vxp")),
                     # where the row's result goes, carried through the VXM beside it
                     self.vx_tag.eq(delay(m, Cat(self._vx_out, self._vx_bank, quant,
                                                 self._vx_link, self._vx_keep), lat, "vxt"))]
        return reading & units["last_pass"]

    def _write_back(self, m):
        """The VXM's result is written to SRAM ``vx_write_latency`` after it leaves the unit
        (``Rules.vx_write_delay`` after its read): int8 as one word to the instruction's
        bank; int32 as byte plane p of every lane to bank ``(bank + p) % banks``, all four in
        the same cycle. Where to is the row's tag, carried beside it through the VXM for a
        bit-serial one (a delay line of ``vxm_latency`` = 512 cycles would be thousands of
        the UP5K's cells), through delay lines here otherwise (they keep the write's
        decision by the banks: from the VXM's far end it was the ULX3S's critical path at
        71.8 MHz, 12.7 of its 13.9 ns routing). With ``vx_write_latency`` each bank's VX
        write (enable, address, its word) and the link's send are registered once more,
        after the decision, so that the VXM's output crosses the chip into flip-flops and
        only the received vector's select is in front of the block RAM."""
        cfg = self.config
        NB, L, W = cfg.banks, cfg.lanes, cfg.vx_write_latency
        if cfg.vxm_serial:
            tag = self.vx_o_tag
        else:
            tag = vx_tag_layout(cfg)(delay(m, Value.cast(self.vx_tag), cfg.vxm_latency, "vxt_o"))
        out_addr, out_bank, out_link = tag.addr, tag.bank, tag.link
        to_sram = self.vx_o_valid & (~out_link | tag.keep)               # (keep=1: both)
        # each bank has its own write port: a received vector takes its bank's (a VX write
        # to the same bank on the same cycle is a race), a VX writes the others
        m.d.comb += [self.link_out_valid.eq(delay(m, self.vx_o_valid & out_link, W, "send")),
                     self.link_out_data.eq(delay(m, self.vx_o_i8, W, "send_data")),
                     self.sram_write.eq(delay(m, to_sram, W, "vx_write"))]
        vx_addr = delay(m, out_addr, W, "vx_addr")       # the same for every bank
        for b in range(NB):
            plane = Signal(2, name=f"plane{b}")
            hit8 = out_bank == b
            plane_hits = [((out_bank + p) % NB == b, p) for p in range(4)]
            hit32 = Signal(name=f"hit32_{b}")
            # with 4 banks every bank takes one of the 4 planes: no logic to decide it
            m.d.comb += hit32.eq(1 if NB == 4 else Cat(*[hit for hit, _ in plane_hits]).any())
            for hit, p in reversed(plane_hits):
                with m.If(hit):
                    m.d.comb += plane.eq(p)
            i32_bytes = Cat(*[self.vx_o_i32.word_select(n, 32).word_select(plane, 8)
                              for n in range(L)])
            vx_en = delay(m, to_sram & Mux(tag.quant, hit8, hit32), W, f"vx_en{b}")
            vx_data = delay(m, Mux(tag.quant, self.vx_o_i8, i32_bytes), W, f"vx_data{b}")
            with m.If(self._rx_writing & (self._rx_bank == b)):
                m.d.comb += [self.wr_en[b].eq(1), self.wr_addr[b].eq(self._rx_addr),
                             self.wr_data[b].eq(self.link_in_data)]
            with m.Elif(vx_en):
                m.d.comb += [self.wr_en[b].eq(1), self.wr_addr[b].eq(vx_addr),
                             self.wr_data[b].eq(vx_data)]

    def _counters(self, m, busy, *, w_valid, a_valid, vx_row_done):
        """Performance counters (``lpu.contract.isa.COUNTERS``), cleared by ``start``.
        ``insns`` is the program counter (cleared by ``start``, advanced by each issue, HALT's
        included: the same count), and ``stalls`` is ``cycles - insns``: no counter adds the
        issue decision (its 32-bit adders, behind the decision's LUT levels, were the ULX3S
        tiles' critical path at a 100 MHz target: ``tiny`` 93.0 MHz, the board preset's
        73.9)."""
        counted = {"cycles": 1, "mxm_busy": a_valid, "lw_rows": w_valid,
                   "vx_rows": vx_row_done}
        cnt = {name: Signal(32, name=f"count_{name}") for name in counted}
        with m.If(self.start & ~busy):
            m.d.sync += [c.eq(0) for c in cnt.values()]
        with m.Elif(busy):
            m.d.sync += [cnt[name].eq(cnt[name] + event) for name, event in counted.items()]
        cnt["insns"] = self._pc
        cnt["stalls"] = (cnt["cycles"] - self._pc)[:32]
        m.d.comb += [self.counters[i].eq(cnt[name]) for i, name in enumerate(COUNTERS)]
