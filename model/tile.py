"""The tile at instruction level: the cycle each instruction issues, every stream's timing,
and the bytes it leaves in SRAM. Bit-exact and cycle-exact against ``rtl/tile.py``.

Timing rules (cycle 0 is the first cycle after ``start``; one instruction issues per cycle at
most, in program order, the first on cycle ``fetch_latency`` at the earliest; ``L`` lanes, ``A`` = mxm_latency, ``V`` = vxm_latency, ``P`` =
vxm_passes):

``LW bank, base, stride, wbuf`` issues on the first cycle ``i`` with the bank's stream free,
    ``i >= previous LW + L`` and ``i >= last activation with wbuf + L - 3``. It reads rows
    ``base + r*stride`` on cycles ``i + 1 + r`` (the stream's start is registered) and writes
    weight row r on cycle ``i + 2 + r``.
``MM bank, base, stride, count, acc_base, wbuf, accumulate`` issues on the first cycle ``j``
    with the bank's stream free and the previous MM's stream done; activation m is read on
    ``j + 1 + m``, enters the array on ``j + 2 + m`` and updates ``acc[acc_base + m]`` on
    ``j + 2 + m + A + 1`` (readable one cycle later).
``VX bank, base, stride, count, acc_base, quant, prow`` issues once the previous VX's last
    accumulator read is under way; it reads accumulator e (and parameter row ``prow``) on
    the ``P`` cycles from ``r0 + P*e`` (one VXM pass each) where ``r0 = max(issue + 1, first
    cycle every earlier MM's updates are readable)`` and writes its result on
    ``r0 + P*e + 1 + V``: int8 to ``bank``, or int32 as byte plane p of each lane to bank
    ``(bank + p) % banks``, at ``base + e*stride``.
``HALT`` issues once every weight row, accumulator update and SRAM write is done. The run
    takes ``HALT's cycle + 1`` cycles.

Programs whose units race (an instruction reading SRAM or accumulators before an earlier
instruction's write lands, or a later instruction's write landing before an earlier one's
read) raise :class:`lpu.contract.isa.ProgramError`; everything else is modelled exactly.
"""

from dataclasses import dataclass, field

import numpy as np

from lpu.contract.isa import COUNTERS, Op, ProgramError, validate_program
from lpu.contract.timing import RULES, Rules
from .arith import wrap32
from .mxm import Activations, MatmulModel, apply_updates
from .vxm import requantize_row

__all__ = ["TileModel", "Timing", "schedule", "COUNTERS"]

NEVER = -(1 << 40)


@dataclass
class Timing:
    issue: list = field(default_factory=list)       # issue cycle of each instruction
    vx_first_read: dict = field(default_factory=dict)   # pc -> r0
    cycles: int = 0
    # the cycle of every vector at each unit boundary, for cycle-exact checking
    weight_rows: list = field(default_factory=list)     # weight row written into the array
    activations: list = field(default_factory=list)     # activation vector enters the array
    results: list = field(default_factory=list)         # result vector leaves the array
    vx_reads: list = field(default_factory=list)        # accumulator row read by the VXM
    sram_writes: list = field(default_factory=list)     # VXM result written to SRAM
    sram_write_banks: dict = field(default_factory=dict)    # cycle -> banks a VX writes
    link_sends: list = field(default_factory=list)      # VXM int8 row sent east (VX link=1)
    rx_writes: list = field(default_factory=list)       # arriving vector written to SRAM (RX)
    rx: dict = field(default_factory=dict)              # pc -> the arrival cycles it takes
    counters: dict = field(default_factory=dict)
    # per instruction: the rules it issued at exactly the limit of (its cycle is the first
    # the rule allows), for functional coverage
    limits: list = field(default_factory=list)


def schedule(program, config, loosen=(), arrivals=()):
    """Issue cycle of every instruction and the run's counters: timing depends on the
    program only (and, on a chip, on the cycles vectors arrive from the west link), never on
    data. Every bound is a rule of :class:`lpu.contract.timing.Rules`.

    ``arrivals``: cycles (sorted) on which vectors arrive from the west link. Each ``RX``
    takes the next ``count`` of them; it issues once the previous RX has all of its own
    (``rx_after_rx``), takes arrivals from the cycle after its issue, and LW, MM and HALT wait
    until every vector received so far has landed (``rx_done``), LW and MM except the
    vectors of an ``early`` RX (the next RX, issuing only once it is complete, a ``WAIT``
    with ``fence``, and HALT wait for those). A vector arriving when no
    receive stream is open, or an RX whose vectors never all arrive, is a race
    (:class:`ProgramError`). A ``WAIT`` issues ``count`` cycles after the previous WAIT
    issued (after cycle 0 for the first), or as soon as the program reaches it if that is
    later: it paces a tile to a schedule (a chip's pipeline).

    ``loosen``: names of rules (``lpu.contract.timing.RULES``) to move one cycle earlier, for
    showing that each rule is necessary; never used to run a program."""
    unknown = sorted(set(loosen) - set(RULES))
    if unknown:
        raise ValueError(f"unknown timing rule '{unknown[0]}' (rules: {', '.join(RULES)})")
    R = Rules(config)
    L, _P = config.lanes, config.vxm_passes

    def bound(rule, cycle):
        return cycle - (rule in loosen)

    def at_limit(cycle, **bounds):
        return {rule for rule, b in bounds.items() if b == cycle and b >= pc_ready and b > 0}

    t = Timing()
    pc_ready = config.fetch_latency     # the first instruction is fetched on cycle 0
    bank_free = [0] * config.banks
    lw_free = lw_done = mm_free = acc_ready = vx_free = vx_done = 0
    guard = [0, 0]
    busy = {"mxm_busy": 0, "lw_rows": 0, "vx_rows": 0}
    arrivals = list(arrivals)
    taken = 0                   # arrivals taken by the RX instructions so far
    rx_done = 0                 # every vector of the RXs LW and MM wait for has landed
    rx_all = 0                  # every vector received so far has landed (RX, HALT)
    wait_mark = 0               # the cycle the last WAIT issued (0: the run's start)

    def no_receive(cycle, after):
        return ProgramError(f"race: a vector arrives from the west link on cycle {cycle} "
                            f"with no receive stream open ({after})")

    for pc, insn in enumerate(program):
        if insn.op in (Op.LW, Op.MM):
            pc_ready = max(pc_ready, rx_done)
        if insn.op == Op.RX:
            i = max(pc_ready, rx_all)
            got = arrivals[taken:taken + insn.count]
            early = [a for a in got if a <= i]
            if early:
                raise no_receive(early[0], f"instruction {pc}, RX, issues on cycle {i}")
            if len(got) < insn.count:
                raise ProgramError(f"instruction {pc} ({insn}) receives {len(got)} of its "
                                   f"{insn.count} vectors: the rest never arrive")
            taken += insn.count
            t.rx[pc] = got
            t.rx_writes.extend(got)
            rx_all = got[-1] + 1
            if not insn.early:
                rx_done = rx_all
            t.limits.append(set())
            t.issue.append(i)
            pc_ready = i + 1
            continue
        if insn.op == Op.WAIT:
            i = max(pc_ready, wait_mark + insn.count, rx_all if insn.fence else 0)
            wait_mark = i
            t.limits.append(set())
        elif insn.op == Op.LW:
            i = max(pc_ready, bound("bank_free", bank_free[insn.bank]),
                    bound("lw_after_lw", lw_free), bound("weight_guard", guard[insn.wbuf]))
            t.limits.append(at_limit(i, bank_free=bank_free[insn.bank], lw_after_lw=lw_free,
                                     weight_guard=guard[insn.wbuf]))
            bank_free[insn.bank] = lw_free = i + R.lw_stream
            lw_done = max(lw_done, i + R.lw_done)
            first = i + R.weight_write(0)              # one row per cycle from here
            t.weight_rows.extend(range(first, first + L))
            busy["lw_rows"] += L
        elif insn.op == Op.MM:
            i = max(pc_ready, bound("bank_free", bank_free[insn.bank]),
                    bound("mm_after_mm", mm_free))
            t.limits.append(at_limit(i, bank_free=bank_free[insn.bank], mm_after_mm=mm_free))
            n = insn.count
            bank_free[insn.bank] = mm_free = i + R.mm_stream(n)
            guard[insn.wbuf] = i + R.weight_guard(n)
            acc_ready = max(acc_ready, i + R.acc_ready(n))
            first = i + R.activation_enter(0)          # one activation per cycle from here
            t.activations.extend(range(first, first + n))
            t.results.extend(range(first + config.mxm_latency, first + config.mxm_latency + n))
            busy["mxm_busy"] += n
        elif insn.op == Op.VX:
            i = max(pc_ready, bound("vx_after_vx", vx_free))
            n = insn.count
            r0 = max(i + 1, bound("acc_ready", acc_ready))
            t.limits.append(at_limit(i, vx_after_vx=vx_free) |
                            ({"acc_ready"} if acc_ready == r0 and acc_ready > i else set()))
            t.vx_first_read[pc] = r0
            vx_free = r0 + R.vx_next(n)
            vx_done = max(vx_done, r0 + R.vx_done(n))
            t.vx_reads.extend(r0 + R.vx_read(e) for e in range(n))
            cycles = [r0 + R.vx_read(e) + R.vx_write_delay for e in range(n)]
            if insn.link:
                t.link_sends.extend(cycles)
            if insn.keep or not insn.link:         # (keep=1: sent and written)
                t.sram_writes.extend(cycles)
                banks = {insn.bank} if insn.quant else {(insn.bank + p) % config.banks
                                                         for p in range(4)}
                for c in cycles:
                    t.sram_write_banks.setdefault(c, set()).update(banks)
            busy["vx_rows"] += n
        elif insn.op == Op.HALT:
            if taken < len(arrivals):
                raise no_receive(arrivals[taken], "after the last RX")
            i = max(pc_ready, rx_all, bound("halt", max(lw_done, mm_free, acc_ready, vx_done)))
            t.limits.append(at_limit(i, halt=max(lw_done, mm_free, acc_ready, vx_done)))
            t.issue.append(i)
            t.cycles = i + 1
            break
        else:
            raise ProgramError(f"instruction {pc}: unknown opcode {insn.op}")
        t.issue.append(i)
        pc_ready = i + 1
    t.counters = dict(cycles=t.cycles, **busy, stalls=t.cycles - len(t.issue), insns=len(t.issue))
    return t


class TileModel:
    """The tile's state (SRAM, parameter memory, weights, accumulators) and its programs.

    The same interface as the other back ends' devices: write/read SRAM and parameter rows,
    then :meth:`run` a program; state persists between runs as it does in the hardware.
    """

    def __init__(self, config):
        self.config = config
        cfg = config
        self.sram = np.zeros((cfg.banks, cfg.depth, cfg.lanes), dtype=np.int8)
        self.params = {}
        self.mxm = MatmulModel(cfg)
        self.base = 0                 # absolute cycle of this run's cycle 0 (weight history)
        self.last_timing = None
        self.last_link = []

    # ---- host side -------------------------------------------------------------------
    def write_sram(self, bank, addr, words):
        words = np.asarray(words, dtype=np.int8).reshape(-1, self.config.lanes)
        idx = (addr + np.arange(len(words))) % self.config.depth
        self.sram[bank, idx] = words

    def read_sram(self, bank, addr, count):
        idx = (addr + np.arange(count)) % self.config.depth
        return self.sram[bank, idx].copy()

    def write_params(self, row, params):
        """``params``: dict with bias, multiplier, shift (lanes each), zero_point, act_min,
        act_max."""
        self.params[row] = {k: np.asarray(v, dtype=np.int64) for k, v in params.items()}

    # ---- a run ---------------------------------------------------------------------------
    def run(self, program, arrivals=()):
        """Run ``program`` (list of :class:`lpu.contract.isa.Insn`); returns the counters.
        ``arrivals``: (cycle, vector) pairs arriving from the west link (on a chip,
        ``model.chip``); what VX instructions with ``link=1`` send east is left in
        ``last_link`` as (cycle, vector) pairs."""
        cfg = self.config
        L, D, P = cfg.lanes, cfg.depth, cfg.vxm_passes
        R = Rules(cfg)
        validate_program(program, cfg)
        arrivals = sorted(arrivals, key=lambda a: a[0])
        t = schedule(program, cfg, arrivals=[a for a, _ in arrivals])
        link_out = []
        arriving = iter(v for _, v in arrivals)
        base = self.base
        self.mxm.forget_before(base)
        sram_write_cycle = np.full((cfg.banks, D), NEVER, dtype=np.int64)
        sram_read_cycle = np.full((cfg.banks, D), NEVER, dtype=np.int64)
        acc_update_cycle = np.full(cfg.acc_depth, NEVER, dtype=np.int64)
        acc_read_cycle = np.full(cfg.acc_depth, NEVER, dtype=np.int64)

        def sram_read(pc, bank, base_addr, stride, count, first):
            addrs = (base_addr + stride * np.arange(count)) % D
            cycles = first + np.arange(count)
            late = sram_write_cycle[bank, addrs] >= cycles
            if late.any():
                k = int(np.argmax(late))
                raise ProgramError(f"race: instruction {pc} reads bank {bank} address "
                                   f"{addrs[k]} on cycle {cycles[k]}, before an earlier VX's "
                                   f"write of it lands (cycle {sram_write_cycle[bank, addrs[k]]})")
            np.maximum.at(sram_read_cycle[bank], addrs, cycles)
            return self.sram[bank, addrs]

        for pc, insn in enumerate(program):
            i = t.issue[pc]
            if insn.op == Op.RX:
                got = np.asarray(t.rx[pc], dtype=np.int64)
                words = np.array([next(arriving) for _ in got], dtype=np.int8).reshape(-1, L)
                addrs = (insn.base + insn.stride * np.arange(len(got))) % D
                clash = [c for c in t.rx[pc] if insn.bank in t.sram_write_banks.get(c, ())]
                if clash:
                    raise ProgramError(f"race: instruction {pc} (RX) writes a received vector "
                                       f"to bank {insn.bank} on cycle {clash[0]}, when a VX "
                                       f"writes that bank too (one write port per bank)")
                for k in range(len(got)):          # in arrival order: the last write wins
                    self._sram_write(pc, insn.bank, addrs[k:k + 1], words[k:k + 1], got[k:k + 1],
                                     sram_write_cycle, sram_read_cycle)
            elif insn.op == Op.LW:
                rows = sram_read(pc, insn.bank, insn.base, insn.stride, L, i + R.stream_read(0))
                self.mxm.write_rows(base + i + R.weight_write(np.arange(L)), insn.wbuf, rows)
            elif insn.op == Op.MM:
                n = insn.count
                data = sram_read(pc, insn.bank, insn.base, insn.stride, n, i + R.stream_read(0))
                enter = i + R.activation_enter(np.arange(n))
                addr = (insn.acc_base + np.arange(n)) % cfg.acc_depth
                act = Activations(base + enter, np.full(n, insn.wbuf), data, addr,
                                  np.full(n, bool(insn.accumulate)))
                results = self.mxm.results(act)
                update = enter + cfg.mxm_latency + cfg.acc_update_delay
                if (acc_read_cycle[addr] > update).any():
                    k = int(np.argmax(acc_read_cycle[addr] > update))
                    raise ProgramError(f"race: instruction {pc} updates accumulator {addr[k]} "
                                       f"on cycle {update[k]}, before an earlier VX reads it")
                apply_updates(self.mxm.acc, addr, act.accumulate, results)
                np.maximum.at(acc_update_cycle, addr, update)
            elif insn.op == Op.VX:
                n = insn.count
                r0 = t.vx_first_read[pc]
                reads = r0 + R.vx_read(np.arange(n))   # first of the row's P reads
                addr = (insn.acc_base + np.arange(n)) % cfg.acc_depth
                np.maximum.at(acc_read_cycle, addr, reads + P - 1)
                acc = self.mxm.acc[addr].astype(np.int64)
                p = self.params.get(insn.prow)
                if p is None:
                    p = {k: np.zeros(L, np.int64) for k in ("bias", "multiplier", "shift")}
                    p.update(zero_point=np.int64(0), act_min=np.int64(0), act_max=np.int64(0))
                write = reads + R.vx_write_delay
                out_addr = (insn.base + insn.stride * np.arange(n)) % D
                if insn.quant:
                    q = requantize_row(acc, p)
                    if insn.link:
                        link_out.extend(zip(write.tolist(), q))
                    if insn.keep or not insn.link:
                        self._sram_write(pc, insn.bank, out_addr, q, write,
                                         sram_write_cycle, sram_read_cycle)
                else:
                    x = wrap32(acc + p["bias"])
                    planes = x.view(np.uint8).reshape(n, L, 4)     # little-endian bytes
                    for plane in range(4):
                        self._sram_write(pc, (insn.bank + plane) % cfg.banks, out_addr,
                                         planes[:, :, plane].view(np.int8), write,
                                         sram_write_cycle, sram_read_cycle)
        self.base += t.cycles + 1000
        self.last_timing = t
        self.last_link = link_out
        return dict(t.counters)

    def _sram_write(self, pc, bank, addrs, words, cycles, write_cycle, read_cycle):
        late = read_cycle[bank, addrs] > cycles
        if late.any():
            k = int(np.argmax(late))
            raise ProgramError(f"race: instruction {pc} writes bank {bank} address {addrs[k]} "
                               f"on cycle {cycles[k]}, before an earlier instruction reads it")
        # an earlier instruction's write (a received vector) landing after this one
        early = write_cycle[bank, addrs] > cycles
        if early.any():
            k = int(np.argmax(early))
            raise ProgramError(f"race: instruction {pc} writes bank {bank} address {addrs[k]} "
                               f"on cycle {cycles[k]}, before an earlier instruction's write of "
                               f"it lands (cycle {write_cycle[bank, addrs[k]]})")
        self.sram[bank, addrs] = words
        np.maximum.at(write_cycle[bank], addrs, cycles)
