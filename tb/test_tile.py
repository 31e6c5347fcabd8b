"""The tile end to end: compiled GEMMs through the host port, against the ISA-level model.

For every run: the SRAM words holding the results equal the model's, bit for bit; the
counters (cycles, MXM busy, ...) equal the model's; every weight row, activation, result
vector, accumulator read and SRAM write happens on the cycle the model's schedule predicts
(monitored inside the tile). The assembled matrices also equal an independent reference of
the GEMM semantics.
"""

import cocotb
import numpy as np
from cocotb.triggers import ClockCycles, ReadOnly, RisingEdge, with_timeout

from lpu.host.compiler import Quant, assemble, collect, compile_gemm
from model.gemm import reference_gemm
from lpu.contract.bits import pack
from lpu.contract.hostport import load_run
from lpu.contract.isa import Insn, Op, ProgramError
from lpu.host.runtime import result_regions
from lpu.host.trace import build_trace, diff_traces, timing_events
from model.tile import TileModel
from tb.coverage import STRIDES, holes, sample_program
from tb.common import CLOCK_NS, WATCHDOG, load_config, rng_for, record_stats
from tb.host import HostDriver

TILE_POINTS = ("tile.insn.kind_stride_bank", "tile.insn.kind_wraps", "tile.vx.int32_bank",
               "tile.mm.accumulate", "tile.limit", "tile.rx.bank", "tile.bank_overlap",
               "tile.wait", "tile.rx.stride", "tile.rx.early", "tile.wait.fence")
PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37]


async def run_plan(host, cfg, plan, model, monitor_runs=True):
    """Run every run of ``plan`` on the simulated tile and on the model; check everything."""
    blocks = []
    total = 0
    for ri, run in enumerate(plan.runs):
        await load_run(host, run)
        load_run(model, run)
        expected = model.run(run.program)
        timing = model.last_timing
        sample_program(cfg, run.program, timing)
        counters = await host.run(run.program, max_cycles=2 * expected["cycles"] + 1000,
                                  monitor=monitor_runs)
        if monitor_runs:
            for name, got in host.last_events.items():
                want = sorted(getattr(timing, name))
                assert got == want, (f"run {ri}: {name} on cycles {got[:12]}..., model "
                                     f"predicts {want[:12]}... ({len(got)} vs {len(want)})")
        assert counters == expected, f"run {ri}: counters {counters} != model {expected}"
        for bank, addr, n in result_regions(cfg, run):
            got = await host.read_sram(bank, addr, n)
            want = model.read_sram(bank, addr, n)
            assert np.array_equal(got, want), (
                f"run {ri}: bank {bank} words {addr}..{addr + n - 1} differ from the model "
                f"(first at word {addr + int(np.argmax((got != want).any(axis=1)))})")
        blocks.append(collect(cfg, plan, run, model.read_sram))
        total += counters["cycles"]
    return assemble(cfg, plan, blocks), total


def random_case(rng, cfg, quant):
    L = cfg.lanes
    pick = lambda: int(rng.choice([1, int(rng.choice(PRIMES)), int(rng.integers(1, 3 * L + 2)), L, 2 * L]))
    M, K, N = pick(), pick(), pick()
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    bias = rng.integers(-(1 << 20), 1 << 20, N).astype(np.int32) if rng.random() < 0.7 else None
    q = None
    if quant:
        per_channel = rng.random() < 0.5
        n = N if per_channel else 1
        mult = rng.integers(1 << 28, 1 << 31, n)
        shift = rng.integers(-12, 3, n)
        lo, hi = sorted(int(x) for x in rng.integers(-128, 128, 2))
        if rng.random() < 0.5:
            lo, hi = (-128, 127) if rng.random() < 0.5 else (0, 127)     # none, ReLU
        q = Quant(multiplier=np.resize(mult, N), shift=np.resize(shift, N),
                  output_zero_point=int(rng.integers(-128, 128)),
                  input_zero_point=int(rng.integers(-128, 128)) if rng.random() < 0.6 else 0,
                  activation_min=lo, activation_max=hi,
                  rounding=str(rng.choice(["single", "double"])))
    return A, B, bias, q


async def gemm_session(dut, name, cases, monitor=True):
    cfg = load_config()
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    model = TileModel(cfg)
    cycles = 0
    for i, (A, B, bias, q) in enumerate(cases):
        plan = compile_gemm(cfg, A, B, bias, q)
        out, c = await run_plan(host, cfg, plan, model, monitor)
        cycles += c
        ref = reference_gemm(A, B, bias, q)
        np.testing.assert_array_equal(
            out, ref, err_msg=f"{name} case {i}: M,K,N={A.shape[0]},{A.shape[1]},{B.shape[1]} "
                              f"quant={q is not None}: result != reference semantics")
        dut._log.info(f"{name} case {i}: {A.shape[0]}x{A.shape[1]}x{B.shape[1]} "
                      f"{'int8' if q else 'int32'} {len(plan.runs)} run(s), {c} cycles, "
                      f"utilisation {plan.macs / (cfg.lanes ** 2 * c) * 100:.1f} %")
    record_stats(name, cycles, cases=len(cases))


@cocotb.test(**WATCHDOG)
async def test_gemm_int32(dut):
    """Random shapes (1, primes, non-multiples of lanes), int32 results with and without bias."""
    rng = rng_for("test_gemm_int32")
    cfg = load_config()
    await gemm_session(dut, "test_gemm_int32", [random_case(rng, cfg, False) for _ in range(6)])


@cocotb.test(**WATCHDOG)
async def test_gemm_quantised(dut):
    """Random shapes, TFLite int8 output: per-channel and per-tensor multipliers and shifts,
    input and output zero points, clamps (none, ReLU, narrow)."""
    rng = rng_for("test_gemm_quantised")
    cfg = load_config()
    await gemm_session(dut, "test_gemm_quantised", [random_case(rng, cfg, True) for _ in range(6)])


@cocotb.test(**WATCHDOG)
async def test_requantisation_every_shift(dut):
    """Every shift in [-31, 30] through the whole tile, one per output channel, on small
    accumulators (so large shifts do not just saturate), random multipliers of the magnitude
    that keeps the outputs in range, both roundings: the rounding datapath's every bit
    position, and the multipliers' low bits, are exercised end to end."""
    rng = rng_for("test_requantisation_every_shift")
    cfg = load_config()
    N = 62
    cases = []
    for rounding in ("single", "double"):
        for scale in (2, 40):
            K = int(rng.integers(1, 2 * cfg.lanes))
            A = rng.integers(-scale, scale + 1, (2 * cfg.lanes + 1, K), dtype=np.int8)
            B = rng.integers(-scale, scale + 1, (K, N), dtype=np.int8)
            bias = rng.integers(-300, 300, N).astype(np.int32)
            # each channel's multiplier of the magnitude that puts its outputs in the int8
            # range for its shift, where one can (so its low bits reach the results)
            shifts = np.arange(-31, 31)
            k = np.clip(np.round(37 - shifts - np.log2(scale * scale * K)), 0, 30).astype(np.int64)
            q = Quant(multiplier=rng.integers(np.int64(1) << k, np.int64(2) << k), shift=shifts,
                      output_zero_point=int(rng.integers(-20, 20)),
                      input_zero_point=int(rng.integers(-3, 4)), rounding=rounding)
            cases.append((A, B, bias, q))
    await gemm_session(dut, "test_requantisation_every_shift", cases, monitor=False)


@cocotb.test(**WATCHDOG)
async def test_gemm_split(dut):
    """A GEMM too large for one run: split over M (and N) by the compiler, results joined."""
    rng = rng_for("test_gemm_split")
    cfg = load_config()
    L = cfg.lanes
    M = cfg.acc_depth + 3                    # more rows than the accumulators hold
    A = rng.integers(-128, 128, (M, 2 * L + 1), dtype=np.int8)
    B = rng.integers(-128, 128, (2 * L + 1, L + 2), dtype=np.int8)
    plan = compile_gemm(cfg, A, B)
    assert len(plan.runs) > 1, "expected a split into several runs"
    await gemm_session(dut, "test_gemm_split", [(A, B, None, None)], monitor=False)


@cocotb.test(**WATCHDOG)
async def test_gemm_quantised_k_split(dut):
    """A quantised K too large for one run: consecutive runs continue the same accumulators
    (they persist in the tile between runs) and only the last one requantises; both
    roundings."""
    rng = rng_for("test_gemm_quantised_k_split")
    cfg = load_config()
    L = cfg.lanes
    M, K, N = 3, 2 * cfg.depth + L + 1, L + 1
    cases = []
    for rounding in ("single", "double"):
        A = rng.integers(-128, 128, (M, K), dtype=np.int8)
        B = rng.integers(-128, 128, (K, N), dtype=np.int8)
        q = Quant(multiplier=rng.integers(1 << 29, 1 << 31, N), shift=np.full(N, -13),
                  output_zero_point=-5, input_zero_point=9, rounding=rounding)
        assert any(not r.emits for r in compile_gemm(cfg, A, B, None, q).runs)
        cases.append((A, B, rng.integers(-9999, 9999, N).astype(np.int32), q))
    await gemm_session(dut, "test_gemm_quantised_k_split", cases, monitor=False)


@cocotb.test(**WATCHDOG)
async def test_gemm_utilisation(dut):
    """M = 16 L, K = N = 4 L, quantised: the whole program's cycle count equals the model's;
    utilisation includes fill, the VXM drain of the last tile, and the HALT."""
    rng = rng_for("test_gemm_utilisation")
    cfg = load_config()
    L = cfg.lanes
    M, K, N = 16 * L, 4 * L, 4 * L
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    q = Quant(multiplier=np.full(N, 1 << 30), shift=np.full(N, -8))
    await gemm_session(dut, "test_gemm_utilisation", [(A, B, None, q)], monitor=False)


@cocotb.test(**WATCHDOG)
async def test_host_port_ignored_while_busy(dut):
    """The host port's contract: while a program runs, ``start`` and every write are ignored,
    so a running program can never be restarted or corrupted. A compiled GEMM, with starts
    and writes (instructions, SRAM words the program reads, parameters) thrown at the port on
    random cycles of its run (reads too: none is answered), and random values on every input
    but the strobes while it is idle: same counters, same results as the model, which sees
    none."""
    rng = rng_for("test_host_port_ignored_while_busy")
    cfg = load_config()
    L = cfg.lanes
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    A = rng.integers(-128, 128, (3 * L, 2 * L), dtype=np.int8)
    B = rng.integers(-128, 128, (2 * L, 2 * L), dtype=np.int8)
    q = Quant(multiplier=np.full(2 * L, 1 << 30), shift=np.full(2 * L, -8))
    plan = compile_gemm(cfg, A, B, None, q)
    model = TileModel(cfg)
    d = dut
    parts = cfg.param_parts
    for run in plan.runs:
        await load_run(host, run)
        load_run(model, run)
        expected = model.run(run.program)
        await host.write_program(run.program)
        # every host-port input random but the strobes (we, re, start) low: nothing happens
        # (the program and the parameters it uses are in place, and must stay so)
        for _ in range(24):
            d.host__region.value = int(rng.integers(0, 4))
            d.host__bank.value = int(rng.integers(0, cfg.banks))
            d.host__addr.value = int(rng.integers(0, 4))
            d.host__part.value = int(rng.integers(0, parts))
            d.host__wdata.value = int(rng.integers(0, 1 << 30))
            await RisingEdge(d.clk)
        await host.start_program()
        # in the first third of the run, so what they aim at is still to be used
        noise = [1]                 # the first: the input words before the first MM reads them
        for c in sorted({int(c) for c in rng.integers(4, expected["cycles"] // 3, 6)}):
            if not noise or c >= noise[-1] + 3:          # each takes two cycles
                noise.append(c)
        k = 0
        for n, c in enumerate(noise):
            await ClockCycles(d.clk, c - k)
            k = c + 1
            assert int(d.host__busy.value), "the program ended before the test's noise"
            region = n % 3                                        # SRAM, IMEM, PARAM in turn
            d.host__start.value = 1
            d.host__we.value = 1
            d.host__region.value = region
            d.host__bank.value = 0 if n == 0 else int(rng.integers(0, cfg.banks))
            d.host__part.value = int(rng.integers(0, parts))
            # what the program has yet to use: its last instructions, the parameter rows of
            # its VXs (at its end), its first words
            d.host__addr.value = (int(rng.choice([len(run.program) - 1, len(run.program) - 2]))
                                  if region == 1 else int(rng.integers(0, 2 if region == 2 else 4)))
            d.host__wdata.value = int(rng.integers(0, 1 << 30))
            d.host__re.value = 1                                  # a read: not honoured
            await RisingEdge(d.clk)
            d.host__start.value = 0
            d.host__we.value = 0
            d.host__re.value = 0
            await ReadOnly()
            assert not int(d.host__rvalid.value), "a host read was answered while busy"
            await RisingEdge(d.clk)
            k += 1
        # and the port left addressing the program's HALT with garbage, write strobe low
        d.host__region.value = 1
        d.host__addr.value = len(run.program) - 1
        d.host__wdata.value = int(rng.integers(1, 1 << 30))
        await with_timeout(RisingEdge(d.host__done), 4 * expected["cycles"] * CLOCK_NS, "ns")
        await RisingEdge(d.clk)
        assert await host.read_counters() == expected, "a start or write while busy changed the run"
        for bank, addr, n in result_regions(cfg, run):
            assert np.array_equal(await host.read_sram(bank, addr, n),
                                  model.read_sram(bank, addr, n)), "results differ"
    record_stats("test_host_port_ignored_while_busy", 0)


@cocotb.test(**WATCHDOG)
async def test_counters_past_16_bits(dut):
    """A program as long as the instruction memory holds, of full-depth VXs after an MM: the
    32-bit counters (cycles, rows) pass 2**16 (on every preset whose memories allow it) and
    read back equal to the model's, every bit of their low halves exercised."""
    cfg = load_config()
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    model = TileModel(cfg)
    rng = rng_for("test_counters_past_16_bits")
    L = cfg.lanes
    words = rng.integers(-128, 128, (cfg.depth, L), dtype=np.int8)
    await host.write_sram(0, 0, words)
    model.write_sram(0, 0, words)
    p = dict(bias=np.zeros(L, np.int64), multiplier=np.full(L, 1 << 30), shift=np.full(L, -10),
             zero_point=0, act_min=-128, act_max=127)
    await host.write_params(0, p)
    model.write_params(0, p)
    vx = Insn(Op.VX, bank=1, base=0, stride=1, count=cfg.acc_depth, quant=1)
    program = ([Insn(Op.LW, bank=0), Insn(Op.MM, bank=0, count=cfg.acc_depth)] +
               [vx] * (cfg.imem_depth - 3) + [Insn(Op.HALT)])
    expected = model.run(program)
    if cfg.imem_depth * cfg.acc_depth * cfg.vxm_passes >= 1 << 17:    # (not on the small boards)
        assert expected["cycles"] >= 1 << 16, f"only {expected['cycles']} cycles"
    assert await host.run(program) == expected, "counters differ from the model's"
    assert np.array_equal(await host.read_sram(1, 0, cfg.acc_depth),
                          model.read_sram(1, 0, cfg.acc_depth)), "results differ"
    record_stats("test_counters_past_16_bits", expected["cycles"])


def _stride(rng, cfg, kind):
    """A stride of class ``kind`` (``tb.coverage.STRIDES``), or of any class."""
    D = cfg.depth
    if kind is None:
        kind = str(rng.choice(STRIDES))
    return {"0": 0, "1": 1, "odd": 2 * int(rng.integers(1, D // 2)) + 1,
            "even": 2 * int(rng.integers(1, D // 2))}[kind]


def random_program(rng, cfg, steer=True):
    """A random program over the whole ISA, not what the compiler writes: any bank, base,
    stride (0, 1, odd, even, wrapping past the bank's end), count and accumulator row;
    LW/MM/VX back to back, so they issue at exactly the timing rules' limits; accumulate and
    overwrite; int8 and int32 VX. ``steer``: constrained random towards the functional
    coverage's holes (``tb/coverage.py``): half of the instructions are drawn from the
    kind x stride x bank and kind x wrap bins not hit yet. Some WAITs in between (binding,
    or already past)."""
    L, D = cfg.lanes, cfg.depth
    targets = holes("tile.insn.kind_stride_bank") if steer else []
    wrap_targets = holes("tile.insn.kind_wraps") if steer else []
    int32_banks = holes("tile.vx.int32_bank") if steer else []
    rx_banks = holes("tile.rx.bank") if steer else []
    rx_strides = holes("tile.rx.stride") if steer else []
    overlaps = holes("tile.bank_overlap") if steer else []
    program = []
    if overlaps and rng.random() < 0.5:     # an LW on one bank while an MM reads another
        bank, busy = overlaps[int(rng.integers(0, len(overlaps)))]
        program += [Insn(Op.MM, bank=busy, base=int(rng.integers(0, D)), count=3 * L,
                         acc_base=int(rng.integers(0, cfg.acc_depth))),
                    Insn(Op.LW, bank=bank, base=int(rng.integers(0, D)), wbuf=1)]
    for _ in range(int(rng.integers(2, 10))):
        kind, skind, bank = None, None, int(rng.integers(0, cfg.banks))
        if targets and rng.random() < 0.5:
            kind, skind, bank = targets[int(rng.integers(0, len(targets)))]
        elif wrap_targets and rng.random() < 0.3:
            kind, wraps = wrap_targets[int(rng.integers(0, len(wrap_targets)))]
            skind = str(rng.choice(["1", "odd", "even"])) if wraps else "0"
        op = {"LW": Op.LW, "MM": Op.MM, "VX": Op.VX}[kind] if kind else \
            int(rng.choice([Op.LW, Op.MM, Op.VX]))
        stride = _stride(rng, cfg, skind)
        # short streams mostly; a fifth up to the whole accumulator memory (counter high bits)
        count = int(rng.integers(1, (cfg.acc_depth if rng.random() < 0.2 else
                                     min(cfg.acc_depth, 3 * L)) + 1))
        n = L if op == Op.LW else count
        base = int(rng.integers(0, D))
        if rng.random() < 0.3:                       # wrap past the end, or stay inside
            base = D - 1 if rng.random() < 0.5 else max(0, D - 1 - (n - 1) * stride)
        acc_base = int(rng.integers(0, cfg.acc_depth))
        if rng.random() < 0.1:                       # pace: binding or already past
            program.append(Insn(Op.WAIT, count=int(rng.integers(0, 60)),
                                fence=int(rng.random() < 0.3)))
        if op == Op.LW:
            program.append(Insn(Op.LW, bank=bank, base=base, stride=stride,
                                wbuf=int(rng.integers(0, 2))))
        elif op == Op.MM:
            program.append(Insn(Op.MM, bank=bank, base=base, stride=stride, count=count,
                                acc_base=acc_base, wbuf=int(rng.integers(0, 2)),
                                accumulate=int(rng.integers(0, 2))))
        else:
            quant = int(rng.integers(0, 2))
            if int32_banks and rng.random() < 0.5:
                quant, bank = 0, int32_banks[int(rng.integers(0, len(int32_banks)))]
            program.append(Insn(Op.VX, bank=bank, base=base, stride=stride, count=count,
                                acc_base=acc_base, quant=quant,
                                prow=int(rng.integers(0, cfg.param_depth)),
                                link=int(quant and rng.random() < 0.25)))
    if rng.random() < 0.4:          # receive from the west link first (the chip's RX)
        rx_count = int(rng.integers(1, (D if rng.random() < 0.2 else 3 * L) + 1))
        rx_bank = int(rng.choice(rx_banks)) if rx_banks else int(rng.integers(0, cfg.banks))
        program.insert(0, Insn(Op.RX, bank=rx_bank,
                               base=int(rng.integers(0, D)),
                               stride=_stride(rng, cfg, str(rng.choice(rx_strides)) if rx_strides
                                              else None),
                               count=rx_count, early=int(rng.random() < 0.5)))
    return program + [Insn(Op.HALT)]


def random_arrivals(rng, cfg, program):
    """Vectors for the program's RX (its first instruction, issuing on cycle 0): from cycle 1,
    back to back or with gaps."""
    if program[0].op != Op.RX:
        return []
    cycles, c = [], 0
    for _ in range(program[0].count):
        c += 1 if rng.random() < 0.6 else int(rng.integers(2, 12))
        cycles.append(c)
    return [(c, rng.integers(-128, 128, cfg.lanes, dtype=np.int8)) for c in cycles]


@cocotb.test(**WATCHDOG)
async def test_random_legal_programs(dut):
    """Random legal programs (the model refuses racing ones; the generator keeps the rest):
    every SRAM word of every bank, the counters and every unit-boundary event's cycle equal
    the model's."""
    rng = rng_for("test_random_legal_programs")
    cfg = load_config()
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    model = TileModel(cfg)
    L, D = cfg.lanes, cfg.depth
    # earlier tests of this simulation left weights and accumulators in the tile (memories
    # have no reset): zero them in both, through the ISA, before any random program
    zeros = np.zeros((D, L), np.int8)
    await host.write_sram(0, 0, zeros)
    model.write_sram(0, 0, zeros)
    for row in range(cfg.param_depth):
        # multipliers of every magnitude 2**k, with the shift that brings the accumulators
        # (about 2**14) into the int8 range: so every multiplier bit reaches the results
        k = rng.integers(0, 31, L)
        p = dict(bias=rng.integers(-(1 << 14), 1 << 14, L),
                 multiplier=rng.integers(np.int64(1) << k, np.int64(2) << k),
                 shift=np.clip(24 - k + rng.integers(-4, 5, L), -31, 30),
                 zero_point=int(rng.integers(-128, 128)),
                 act_min=-128, act_max=127, rounding=int(rng.integers(0, 2)))
        await host.write_params(row, p)
        model.write_params(row, p)
    # (one full-depth MM per weight buffer: each buffer's guard counter reaches its top bit;
    # a VX of every accumulator right after the second: its wait for them is the longest)
    clear = [Insn(Op.LW, bank=0, wbuf=0), Insn(Op.LW, bank=0, wbuf=1),
             Insn(Op.MM, bank=0, count=cfg.acc_depth, wbuf=0),
             Insn(Op.MM, bank=0, count=cfg.acc_depth, wbuf=1),
             Insn(Op.VX, bank=1, base=0, stride=1, count=cfg.acc_depth, quant=1), Insn(Op.HALT)]
    assert await host.run(clear, monitor=True) == model.run(clear)
    assert host.last_events == {n: sorted(getattr(model.last_timing, n))
                                for n in host.last_events}, "the prologue's events differ"
    # the same random contents everywhere, the banks written in a random order (a host write
    # must reach its bank only)
    for b in rng.permutation(cfg.banks):
        words = rng.integers(-128, 128, (D, L), dtype=np.int8)
        await host.write_sram(int(b), 0, words)
        model.write_sram(int(b), 0, words)
    ran = refused = cycles = 0
    # at least 8 programs; then on until the tile's cover points are closed (at most 24)
    while ran < 8 or (ran < 24 and any(holes(p) for p in TILE_POINTS)):
        program = random_program(rng, cfg)
        arrivals = random_arrivals(rng, cfg, program)
        trial = TileModel(cfg)                      # refuse racing programs before running
        trial.sram, trial.params = model.sram.copy(), dict(model.params)
        try:
            trial.run(program, arrivals)
        except ProgramError:
            refused += 1
            continue
        expected = model.run(program, arrivals)
        timing = model.last_timing
        sample_program(cfg, program, timing)
        counters = await host.run(program, monitor=True, link_in=[
            (c, pack(v, 8)) for c, v in arrivals])
        sent = [pack(v, 8) for _, v in model.last_link]
        assert host.last_link == sent, (f"program {ran}: the vectors sent east differ from "
                                        f"the model's")
        listing = "; ".join(str(i) for i in program)
        for name, got in host.last_events.items():
            assert got == sorted(getattr(timing, name)), (
                f"program {ran} [{listing}]: {name} on cycles {got[:12]}..., model predicts "
                f"{sorted(getattr(timing, name))[:12]}...")
        assert counters == expected, f"program {ran} [{listing}]: counters {counters} != {expected}"
        # and so the timelines (`--trace`) of what the RTL did and of the prediction agree
        traces = [build_trace(cfg, [{"program": program, "events": ev, "counters": counters,
                                     "host": (0, 0)}], backend=b, config_name="tb")
                  for b, ev in (("model", timing_events(timing)), ("sim", host.last_events))]
        assert diff_traces(*traces) is None, f"program {ran}: {diff_traces(*traces)}"
        for b in range(cfg.banks):
            got = await host.read_sram(b, 0, D)
            want = model.read_sram(b, 0, D)
            bad = int(np.argmax((got != want).any(axis=1)))
            assert np.array_equal(got, want), (
                f"program {ran} [{listing}]: bank {b} differs from the model at word "
                f"{bad}: {got[bad].tolist()} != model {want[bad].tolist()}")
        ran += 1
        cycles += counters["cycles"]
    dut._log.info(f"{ran} random legal programs ({refused} racing ones refused), {cycles} cycles; "
                  f"tile coverage holes left: {sum(len(holes(p)) for p in TILE_POINTS)}")
    record_stats("test_random_legal_programs", cycles, programs=ran, refused=refused)
