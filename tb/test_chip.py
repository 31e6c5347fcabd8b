"""A chip of ``tiles`` tiles (``rtl.chip.LpuChip``) against ``model.chip.ChipModel``: layer
chains streaming tile to tile over the links, no host in between.

For every chain: every tile's unit-boundary events (issues, weight rows, activations,
results, accumulator reads, SRAM writes, link sends and receives) happen on the cycle the
chip model predicts, every tile's counters equal the model's, the last tile's result words
equal the model's and an independent reference of the chained GEMMs. Programs with races
(a vector arriving with no receive stream open, a receive that never completes, a send from
the last tile) are refused by the model before they run.
"""

from dataclasses import replace

import cocotb
import numpy as np

from lpu.contract.hostport import load_run
from lpu.contract.isa import Insn, Op, ProgramError
from lpu.host.chain import (all_placements, compile_chain, compile_pipeline, most_subs,
                            run_chain_on_model)
from lpu.host.compiler import Quant
from model.chip import ChipModel
from model.gemm import reference_gemm
from tb.common import WATCHDOG, load_config, record_stats, rng_for
from tb.coverage import sample_program
from tb.host import HostDriver, run_chip


def random_chain(rng, cfg, n_layers=None):
    """A chain of ``n_layers`` (default ``cfg.tiles``) quantised layers, each fitting one
    tile run."""
    L = cfg.lanes
    n_layers = n_layers or cfg.tiles
    M = int(rng.integers(1, 4 * L))
    dims = [int(x) for x in rng.integers(1, 3 * L, n_layers + 1)]
    A = rng.integers(-128, 128, (M, dims[0]), dtype=np.int8)
    layers = []
    for i in range(n_layers):
        K, N = dims[i], dims[i + 1]
        q = Quant(multiplier=rng.integers(1 << 29, 1 << 31, N), shift=rng.integers(-10, -5, N),
                  input_zero_point=int(rng.integers(-8, 8)),
                  output_zero_point=int(rng.integers(-8, 8)),
                  rounding=str(rng.choice(["single", "double"])))
        layers.append((rng.integers(-128, 128, (K, N), dtype=np.int8),
                       rng.integers(-2000, 2000, N).astype(np.int32), q))
    return A, layers


async def read_result(dut, cfg, chain):
    """The chain's result, read from the tiles holding it through the host port."""
    got = {(k, b, a, n): await HostDriver(dut, tile=k).read_sram(b, a, n)
           for k, b, a, n in chain.read_regions(cfg)}
    return chain.result(cfg, lambda *r: got[r])


def refusal(cfg, chain, programs):
    """Why the chip model refuses ``programs`` on ``chain``'s memory images, or None."""
    chip = ChipModel(cfg)
    for tile, run in zip(chip.tiles, chain.runs):
        load_run(tile, run)
    try:
        chip.run(programs)
    except ProgramError as e:
        return str(e)
    return None


@cocotb.test(**WATCHDOG)
async def test_chains(dut):
    """Random layer chains, one layer per tile, and two of them pipelined (the batch in
    sub-chunks, every tile paced by WAITs, consecutive sub-chunks on neighbouring tiles at
    once; one receiving every sub-chunk with one early RX, one receiving each in its turn);
    then three with more layers than tiles (a stage of several layers on a tile, each behind
    the WAIT the compiler fitted), two of them pipelined (each sub-chunk received while the
    tile computes the one before, with early RXs and a fenced WAIT; one receive for all);
    then two with a layer split by output channels between two tiles (a random placement of
    those ``all_placements`` allows), one pipelined: every event of every tile on its cycle,
    and the results read from every tile holding them."""
    rng = rng_for("test_chains")
    cfg = load_config()
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    total = 0
    for case in range(11):
        A, layers = random_chain(rng, cfg, cfg.tiles + (case // 6) * (1 + case % 2) * (case < 9))
        placement = None
        while case >= 9 and placement is None:      # a layer split between two tiles
            splits = [p for p in all_placements(cfg, layers) if any(len(t) and any(
                (a, e) != (0, -(-layers[j][0].shape[1] // cfg.lanes)) for j, a, e in t)
                for t in p)]
            if splits:
                placement = splits[int(rng.integers(len(splits)))]
            else:
                A, layers = random_chain(rng, cfg)
        if case < 4 or case in (6, 9):
            chain = compile_chain(cfg, A, layers, placement)
        else:               # pipelined: sub-chunks of 1 or 2 rows, WAITs pacing every tile
            sub = 1 + case % 2
            A = A[:sub * min(8, most_subs(cfg, A, layers, sub, placement))]   # what a run holds
            # one receive for all sub-chunks, each received ahead (early RX), each in turn
            mode = {5: "plain", 7: "ahead"}.get(case, "stream")
            chain = compile_pipeline(cfg, A, layers, sub, -(-A.shape[0] // sub), placement,
                                     modes=(mode,))
            rx = [[i for i in p if i.op == Op.RX] for p in chain.programs[1:]]
            assert chain.subs == 1 or all(
                (len(r), any(i.early for i in r)) == ((1, True) if mode == "stream" else
                                                      (chain.subs, mode == "ahead"))
                for r in rx), f"chain {case}: receives {rx} in a {mode} pipeline"
        want, want_counters, chip = run_chain_on_model(cfg, chain)
        for program, timing in zip(chain.programs, chip.timings):
            sample_program(cfg, program, timing)
        counters, events = await run_chip(
            dut, cfg, chain.runs, 2 * max(c["cycles"] for c in want_counters) + 1000)
        for k, timing in enumerate(chip.timings):
            for name, got in events[k].items():
                expected = sorted(getattr(timing, name))
                assert got == expected, (
                    f"chain {case}, tile {k}: {name} on cycles {got[:10]}..., the chip model "
                    f"predicts {expected[:10]}... ({len(got)} vs {len(expected)})")
            assert counters[k] == want_counters[k], (
                f"chain {case}, tile {k}: counters {counters[k]} != model {want_counters[k]}")
        got = await read_result(dut, cfg, chain)
        assert np.array_equal(got, want), f"chain {case}: the results differ from the chip model"
        ref = A
        for B, bias, q in layers:
            ref = reference_gemm(ref, B, bias, q)
        assert np.array_equal(want[:, :ref.shape[1]], ref), f"chain {case}: model != reference"
        sends = sum(len(t.link_sends) for t in chip.timings)
        dut._log.info(f"chain {case}: {A.shape[0]} rows through {len(layers)} layers on "
                      f"{cfg.tiles} tiles ({chain.placement}), "
                      f"{sends} link transfers, {max(c['cycles'] for c in counters)} cycles")
        total += max(c["cycles"] for c in counters)
    record_stats("test_chains", total)


@cocotb.test(**WATCHDOG)
async def test_races_are_refused(dut):
    """Programs whose links race are refused by the model, naming tile, instruction, cycle:
    they never reach the chip."""
    cfg = load_config()
    rng = rng_for("test_races_are_refused")
    A, layers = random_chain(rng, cfg)
    chain = compile_chain(cfg, A, layers)
    progs = chain.programs
    cases = []
    if cfg.tiles > 1:
        no_rx = [list(p) for p in progs]
        no_rx[1] = no_rx[1][1:]                         # tile 1 never opens its receive
        cases.append((no_rx, "tile 1: race: a vector arrives from the west link on cycle"))
        short = [list(p) for p in progs]
        rx = short[1][0]
        short[1][0] = Insn(Op.RX, bank=rx.bank, base=rx.base, count=rx.count + 1)
        cases.append((short, "tile 1: instruction 0 (RX"))
    sends = [list(p) for p in progs]
    sends[-1] = [replace(i, link=1) if i.op == Op.VX else i for i in sends[-1]]
    cases.append((sends, f"tile {cfg.tiles - 1}: race: sends a vector east on cycle"))
    for programs, message in cases:
        refused = refusal(cfg, chain, programs)
        assert refused is not None, f"a racing chip program was not refused ({message})"
        assert message in refused, f"refused for another reason: {refused}"
    record_stats("test_races_are_refused", 0, cases=len(cases))


@cocotb.test(**WATCHDOG)
async def test_late_receive_is_a_real_race(dut):
    """Tile 1's receive opened one cycle late (a WAIT before it): the model refuses the
    program, naming the tile and the cycle of the vector that finds no receive open; forced
    onto the chip (the receive one vector shorter, so it completes), the vector is lost and
    the results are wrong: the race the model refuses is real."""
    cfg = load_config()
    if cfg.tiles < 2:
        return
    rng = rng_for("test_late_receive_is_a_real_race")
    host = HostDriver(dut)
    await host.start_clock_and_reset()
    A, layers = random_chain(rng, cfg)
    while A.shape[0] * -(-layers[0][0].shape[1] // cfg.lanes) < 2:       # >= 2 vectors sent
        A, layers = random_chain(rng, cfg)
    chain = compile_chain(cfg, A, layers)
    want, _, chip = run_chain_on_model(cfg, chain)
    first = chip.timings[1].rx[0][0]
    late = [list(p) for p in chain.programs]
    rx = late[1][0]
    late[1] = [Insn(Op.WAIT, count=first - 1)] + late[1]        # the RX issues on `first`
    refused = refusal(cfg, chain, late)
    assert refused is not None, "a receive one cycle late was not refused"
    assert f"tile 1: race: a vector arrives from the west link on cycle {first}" in refused, refused
    late[1][1] = replace(rx, count=rx.count - 1)
    runs = [replace(run, program=p) for run, p in zip(chain.runs, late)]
    await run_chip(dut, cfg, runs, max_cycles=4 * max(t.cycles for t in chip.timings) + 1000,
                   monitor=False)
    result = await read_result(dut, cfg, chain)
    assert not np.array_equal(result, want), "the late receive did not change the results"
    record_stats("test_late_receive_is_a_real_race", 0)
