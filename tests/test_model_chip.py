"""The chip model (``model.chip``) and the chain compiler (``lpu.host.chain``): chains equal the
layer-by-layer reference, link transfers land on the cycle the links' latency says, one tile
is the tile model, and racing programs are refused naming tile, instruction and cycle."""

from dataclasses import replace

import numpy as np
import pytest

from lpu.contract.config import ConfigError, preset
from lpu.contract.isa import Insn, Op, ProgramError, validate_program
from lpu.contract.hostport import load_run
from lpu.host.chain import compile_chain, network_layers, run_chain_on_model
from lpu.host.compiler import CompileError, Quant, compile_gemm
from model.chip import ChipModel
from model.gemm import reference_gemm
from model.tile import TileModel


def _chain(rng, cfg, M=7, n_layers=None):
    n_layers = n_layers or cfg.tiles
    dims = [int(x) for x in rng.integers(2, 11, n_layers + 1)]
    A = rng.integers(-128, 128, (M, dims[0]), dtype=np.int8)
    layers = []
    for i in range(n_layers):
        N = dims[i + 1]
        q = Quant(multiplier=rng.integers(1 << 29, 1 << 31, N), shift=rng.integers(-9, -5, N),
                  input_zero_point=int(rng.integers(-5, 5)),
                  output_zero_point=int(rng.integers(-5, 5)))
        layers.append((rng.integers(-128, 128, (dims[i], N), dtype=np.int8),
                       rng.integers(-999, 999, N).astype(np.int32), q))
    return A, layers


@pytest.mark.parametrize("tiles,latency", [(1, 1), (2, 1), (3, 5), (4, 2)])
def test_chain_equals_reference_and_links_keep_their_latency(tiles, latency):
    cfg = replace(preset("tiny"), tiles=tiles, link_latency=latency)
    rng = np.random.default_rng(tiles * 10 + latency)
    for _ in range(3):
        A, layers = _chain(rng, cfg)
        out, counters, chip = run_chain_on_model(cfg, compile_chain(cfg, A, layers))
        ref = A
        for B, bias, q in layers:
            ref = reference_gemm(ref, B, bias, q)
        assert np.array_equal(out[:, :ref.shape[1]], ref)
        for k in range(1, tiles):
            sent = chip.timings[k - 1].link_sends
            got = chip.timings[k].rx_writes
            assert got == [c + latency for c in sent] and len(got) > 0


def test_one_tile_chip_is_the_tile_model():
    cfg = preset("tiny*1")
    rng = np.random.default_rng(3)
    A, layers = _chain(rng, cfg)
    B, bias, q = layers[0]
    run = compile_gemm(cfg, A, B, bias, q).runs[0]
    chip, tile = ChipModel(cfg), TileModel(cfg)
    load_run(chip.tiles[0], run)
    load_run(tile, run)
    assert chip.run([run.program]) == [tile.run(run.program)]
    assert np.array_equal(chip.tiles[0].sram, tile.sram)


def _racing(cfg, rng, edit):
    A, layers = _chain(rng, cfg)
    chain = compile_chain(cfg, A, layers)
    chip = ChipModel(cfg)
    for t, run in zip(chip.tiles, chain.runs):
        load_run(t, run)
    programs = [list(p) for p in chain.programs]
    edit(programs)
    with pytest.raises(ProgramError) as e:
        chip.run(programs)
    return str(e.value)


def test_races_are_refused_with_tile_instruction_and_cycle():
    cfg = preset("tiny*2")
    rng = np.random.default_rng(5)
    # no receive stream open on tile 1
    msg = _racing(cfg, rng, lambda p: p.__setitem__(1, p[1][1:]))
    assert msg.startswith("tile 1: race: a vector arrives from the west link on cycle ")
    # a receive that starts after its data has begun to arrive: tile 1's RX behind a second
    # VX, which issues only once a first VX of every accumulator row is on its last read
    def late(p):
        rx = p[1][0]
        stall = [Insn(Op.VX, count=cfg.acc_depth, quant=1, bank=3),
                 Insn(Op.VX, count=1, quant=1, bank=3)]
        p[1] = stall + [rx] + p[1][1:]
    msg = _racing(cfg, rng, late)
    assert "tile 1: race: a vector arrives" in msg and "instruction 2, RX, issues on cycle" in msg
    # a receive that waits for more vectors than arrive
    def more(p):
        rx = p[1][0]
        p[1][0] = replace(rx, count=rx.count + 3)
    msg = _racing(cfg, rng, more)
    assert msg.startswith("tile 1: instruction 0 (RX") and "the rest never arrive" in msg
    # the last tile sends east
    msg = _racing(cfg, rng, lambda p: p.__setitem__(
        -1, [replace(i, link=1) if i.op == Op.VX else i for i in p[-1]]))
    assert msg.startswith("tile 1: race: sends a vector east on cycle ")


def test_vx_keep_sends_and_writes():
    """VX ``link=1, keep=1``: every row goes east (``last_link``) and into SRAM, on the cycle
    and with the bytes a ``link=0`` VX writes; ``link=1`` alone leaves SRAM as it was."""
    cfg = preset("tiny")
    rng = np.random.default_rng(8)
    A, layers = _chain(rng, cfg, M=6, n_layers=1)
    run = compile_gemm(cfg, A, *layers[0]).runs[0]
    outs = {}
    for link, keep in ((0, 0), (1, 1), (1, 0)):
        tile = TileModel(cfg)
        load_run(tile, run)
        prog = [replace(i, link=link, keep=keep) if i.op == Op.VX else i for i in run.program]
        tile.run(prog)
        outs[link, keep] = (tile.read_sram(2, run.out_base, run.n_tiles * run.m_count),
                            tile.last_timing.sram_writes, tile.last_link)
    words, writes, _ = outs[0, 0]
    assert np.array_equal(outs[1, 1][0], words) and outs[1, 1][1] == writes
    assert [c for c, _ in outs[1, 1][2]] == writes
    assert np.array_equal(np.array([v for _, v in outs[1, 1][2]]), words)
    assert not outs[1, 0][0].any() and outs[1, 0][1] == [] and outs[1, 0][2][0][0] == writes[0]


def test_isa_and_config_checks():
    cfg = preset("tiny")
    with pytest.raises(ProgramError, match="link=1 sends int8 rows: it needs quant=1"):
        validate_program([Insn(Op.VX, count=1, link=1), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match="keep=1 also keeps the rows it sends: it needs link=1"):
        validate_program([Insn(Op.VX, count=1, quant=1, keep=1), Insn(Op.HALT)], cfg)
    with pytest.raises(ProgramError, match=r"count must be in \[1, 256\]"):
        validate_program([Insn(Op.RX, count=257), Insn(Op.HALT)], cfg)
    validate_program([Insn(Op.RX, count=256), Insn(Op.HALT)], cfg)
    with pytest.raises(ConfigError, match="number of tiles after"):
        preset("tiny*x")
    with pytest.raises(ConfigError, match="'tiles'"):
        preset("tiny*17")
    with pytest.raises(CompileError, match="one layer per tile"):
        compile_chain(preset("tiny*2"), np.zeros((2, 3), np.int8), [])


MODELS = __import__("pathlib").Path(__file__).resolve().parent / "models"


def _lpu(*args, cwd):
    import subprocess
    import sys
    return subprocess.run([sys.executable, "-m", "lpu", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.parametrize("tiles", [3, 2])
def test_lpu_run_on_a_chip_equals_litert(tmp_path, tiles):
    """`lpu run --tiles N`: the digits MLP on a default chip, as the compiler places it on 3
    or 2 tiles, streaming tile to tile: byte for byte
    LiteRT's reference kernels (the oracle), with a report and a trace with one process per
    tile."""
    import json
    from lpu.tools.litert import litert_invoke
    model, inputs = MODELS / "digits_mlp.tflite", MODELS / "digits_mlp.inputs.npy"
    r = _lpu("run", str(model), str(inputs), "-o", "out.npy", "--config", "default",
             "--tiles", str(tiles), "--report", "r.json", "--trace", "t.json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    want = litert_invoke(model, np.load(inputs), "BUILTIN_REF")[0]
    assert np.array_equal(np.load(tmp_path / "out.npy"), want)
    report = json.loads((tmp_path / "r.json").read_text())
    assert [t["tile"] for t in report["tiles"]] == list(range(tiles))
    layers = [i for t in report["tiles"] for i in t["layers"]]
    assert sorted(set(layers)) == [0, 1, 2]
    columns = {}                # each layer's output columns, once, over its tiles
    for t in report["tiles"]:
        for j, c in zip(t["layers"], t["columns"]):
            columns.setdefault(j, []).extend(c)
    for j, n in {0: 32, 1: 16, 2: 10}.items():      # a split layer: [0, x] then [x, N]
        c = columns[j]
        assert c[0] == 0 and c[-1] == n and c[1:-1:2] == c[2:-1:2], columns
    split = any(len(c) == 4 for c in columns.values())
    assert len(layers) == 3 + split and sum(len(c) == 4 for c in columns.values()) <= 1
    assert report["total"]["tiles"] == tiles and report["total"]["chunks"] >= 1
    trace = json.loads((tmp_path / "t.json").read_text())
    procs = {e["args"]["name"] for e in trace["traceEvents"] if e["name"] == "process_name"}
    assert procs == {"chip"} | {f"tile {k}" for k in range(tiles)}
    threads = {(e["pid"], e["args"]["name"]) for e in trace["traceEvents"]
               if e["name"] == "thread_name"}
    assert all((k + 2, "link east") in threads for k in range(tiles - 1))
    assert (tiles + 1, "link east") not in threads


def test_split_layer_on_a_chip_equals_litert():
    """The digits MLP on 3 tiles with its first layer split by output channels between tiles
    0 and 1 (``place_parts``: tile 1 computes the rest of layer 0 from the inputs the host
    loads into it too, receives tile 0's columns and computes layer 1): LiteRT's bytes, and
    fewer chip cycles than whole layers per tile."""
    from lpu.host.chain import place_layers, place_parts, run_network_on_chip
    from lpu.host.network import load_model
    from lpu.tools.litert import litert_invoke
    model, inputs = MODELS / "digits_mlp.tflite", MODELS / "digits_mlp.inputs.npy"
    cfg = replace(preset("default"), tiles=3)
    net, x = load_model(model), np.load(inputs)
    want = litert_invoke(model, x, "BUILTIN_REF")[0]
    layers = [(B, b, q) for _, B, b, q in network_layers(net, "single")]
    split = place_parts(cfg, layers)
    assert split == [[(0, 0, 2)], [(0, 2, 4), (1, 0, 2)], [(2, 0, 2)]]
    cycles = {}
    for name, placement in (("split", split), ("whole", place_layers(cfg, layers))):
        out, _, counters, chains = run_network_on_chip(net, x, cfg, placement=placement)
        assert np.array_equal(out, want), name
        cycles[name] = sum(max(c["cycles"] for c in cc) for cc in counters)
    assert cycles["split"] < cycles["whole"], cycles


@pytest.mark.parametrize("args,message", [
    (["digits_cnn", "--tiles", "2"], "layer 0 is CONV_2D: a network on a chip is a chain"),
    (["digits_mlp", "--tiles", "4"], "3 layers (8 N tiles of 8 output channels) for a chip of "
                                     "4 tiles: no placement"),
    (["digits_mlp", "--tiles", "3", "--backend", "fpga"], "runs on the model or sim back end"),
    (["digits_mlp", "--tiles", "17"], "'tiles'"),
])
def test_lpu_run_on_a_chip_bad_input(tmp_path, args, message):
    name, *rest = args
    r = _lpu("run", str(MODELS / f"{name}.tflite"), str(MODELS / f"{name}.inputs.npy"),
             "-o", "out.npy", "--config", "default", *rest, cwd=tmp_path)
    assert r.returncode == 2 and message in r.stderr and len(r.stderr.splitlines()) == 1, r.stderr
    assert not (tmp_path / "out.npy").exists()


@pytest.mark.parametrize("tiles,latency", [(2, 1), (3, 5), (4, 2)])
def test_pipeline_equals_reference_and_tiles_overlap(tiles, latency):
    """A batch pipelined through the chain (``compile_pipeline``): the same bytes as the
    layer-by-layer reference; tile 0 already streams sub-chunk 1 through its array while
    tile 1 still streams sub-chunk 0 through its own; and the run takes fewer cycles than
    the same batch through the chain in one piece."""
    from lpu.host.chain import compile_pipeline
    cfg = replace(preset("tiny"), tiles=tiles, link_latency=latency)
    rng = np.random.default_rng(100 + tiles)
    A, layers = _chain(rng, cfg, M=12)
    ref = A
    for B, bias, q in layers:
        ref = reference_gemm(ref, B, bias, q)
    chain = compile_pipeline(cfg, A, layers, 2, 6)
    assert all(sum(i.op == Op.WAIT for i in p) == 6 for p in chain.programs)
    out, counters, chip = run_chain_on_model(cfg, chain)
    assert np.array_equal(out[:, :ref.shape[1]], ref)
    acts = [np.array_split(np.array(t.activations), 6) for t in chip.timings]
    assert acts[0][1].min() < acts[1][0].max(), "no two tiles work at once"
    _, whole, _ = run_chain_on_model(cfg, compile_chain(cfg, A, layers))
    assert max(c["cycles"] for c in counters) < max(c["cycles"] for c in whole)


def test_pipeline_refuses_what_does_not_fit():
    from lpu.host.chain import compile_pipeline
    cfg = preset("tiny*2")
    A, layers = _chain(np.random.default_rng(5), cfg, M=4)
    with pytest.raises(CompileError, match="do not fill"):
        compile_pipeline(cfg, A, layers, 1, 2)
    with pytest.raises(CompileError, match="instruction memory|do not fit"):
        compile_pipeline(cfg, np.resize(A, (400, A.shape[1])), layers, 1, 400)


def _reference(A, layers):
    for B, bias, q in layers:
        A = reference_gemm(A, B, bias, q)
    return A


def _random_shapes(seed, max_layers, count=40):
    """(a ``tiny`` chip of 1 to 4 tiles, layers of random shapes: only their shapes matter)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        n, tiles = int(rng.integers(1, max_layers + 1)), int(rng.integers(1, 5))
        shapes = [(int(rng.integers(1, 20)), int(rng.integers(1, 20))) for _ in range(n)]
        yield (replace(preset("tiny"), tiles=tiles),
               [(np.zeros(s), None, None) for s in shapes])


def test_place_layers_is_the_optimum():
    """``place_layers``: consecutive groups, one per tile, whose busiest tile has the least
    predicted time (its weight tiles, and the ones the tile before it works through while it
    sends its last layer's N tiles but the last): against every way to cut the chain."""
    from itertools import combinations
    from lpu.host.chain import place_layers
    for cfg, layers in _random_shapes(11, max_layers=7):
        n, tiles, shapes = len(layers), cfg.tiles, [B.shape for B, _, _ in layers]
        if n < tiles:
            with pytest.raises(CompileError, match="at least one layer per tile"):
                place_layers(cfg, layers)
            continue
        got = place_layers(cfg, layers)
        assert len(got) == tiles and sum(got) == n and min(got) >= 1

        def busiest(counts, shapes=shapes):
            kt = [-(-k // 4) for k, _ in shapes]
            nt = [-(-m // 4) for _, m in shapes]
            edges = np.cumsum([0] + list(counts))
            return max(sum(kt[i] * nt[i] for i in range(a, b)) +
                       (kt[a - 1] * (nt[a - 1] - 1) if a else 0)
                       for a, b in zip(edges, edges[1:]))
        best = min(busiest(np.diff([0, *cuts, n])) for cuts in combinations(range(1, n), tiles - 1))
        assert busiest(got) == best


@pytest.mark.parametrize("tiles,n_layers,latency", [(1, 3, 1), (2, 5, 1), (3, 5, 4)])
def test_several_layers_per_tile(tiles, n_layers, latency):
    """More layers than tiles: each tile runs a stage of consecutive layers, the activations
    between them staying in its SRAM; the bytes of the reference, with every layer on the
    tile ``place_layers`` chose. Each later layer of a stage starts behind a WAIT the
    compiler fitted with the model: with those WAITs at 0 the model refuses the program (a
    layer would read its input before the layer before it has written it)."""
    cfg = replace(preset("tiny"), tiles=tiles, link_latency=latency)
    rng = np.random.default_rng(200 + 10 * tiles + n_layers)
    for _ in range(2):
        A, layers = _chain(rng, cfg, n_layers=n_layers)
        chain = compile_chain(cfg, A, layers)
        counts = [len(parts) for parts in chain.placement]
        assert sum(counts) == n_layers and len(counts) == tiles
        assert [j for parts in chain.placement for j, _, _ in parts] == list(range(n_layers))
        out, _, chip = run_chain_on_model(cfg, chain)
        ref = _reference(A, layers)
        assert np.array_equal(out[:, :ref.shape[1]], ref)
        for k, (run, n) in enumerate(zip(chain.runs, counts)):
            assert sum(i.op == Op.WAIT for i in run.program) == n - 1
            vx = [p for p, i in enumerate(run.program) if i.op == Op.VX]
            tail = max((p for p, i in enumerate(run.program) if i.op == Op.WAIT), default=-1)
            sends = [p for p in vx if run.program[p].link]      # the stage's last layer only
            assert sends == ([] if k == tiles - 1 else [p for p in vx if p > tail])
        unpaced = replace(chain, runs=[replace(r, program=[replace(i, count=0) if i.op == Op.WAIT
                                                           else i for i in r.program])
                                       for r in chain.runs])
        with pytest.raises(ProgramError, match="race"):
            run_chain_on_model(cfg, unpaced)


def test_pipeline_of_stages_equals_reference():
    """A batch pipelined through tiles of several layers each: the reference's bytes, each
    tile's later sub-chunks one interval after the one before."""
    from lpu.host.chain import compile_pipeline
    cfg = preset("tiny*2")
    rng = np.random.default_rng(31)
    A, layers = _chain(rng, cfg, M=10, n_layers=4)
    chain = compile_pipeline(cfg, A, layers, 2, 5, modes=("ahead",))
    plain = compile_pipeline(cfg, A, layers, 2, 5, modes=("plain",))
    stream = compile_pipeline(cfg, A, layers, 2, 5, modes=("stream",))
    # by default one receive for all sub-chunks, which takes the fewest cycles here
    assert compile_pipeline(cfg, A, layers, 2, 5).cycles == stream.cycles
    assert stream.cycles <= min(chain.cycles, plain.cycles), (stream.cycles, chain.cycles,
                                                              plain.cycles)
    out, _, _ = run_chain_on_model(cfg, stream)
    assert np.array_equal(out[:, :layers[-1][0].shape[1]], _reference(A, layers))
    assert all([i.op for i in p].count(Op.RX) == 1 and p[0].early for p in stream.programs[1:])
    assert not any(i.early or i.fence for p in plain.programs for i in p)
    out, counters, chip = run_chain_on_model(cfg, chain)
    assert np.array_equal(out[:, :layers[-1][0].shape[1]], _reference(A, layers))
    assert max(c["cycles"] for c in counters) == chain.cycles
    for k, t in enumerate(chip.timings):
        waits = [(t.issue[p], i) for p, i in enumerate(chain.programs[k]) if i.op == Op.WAIT]
        per_sub = len(waits) // chain.subs
        starts = [c for c, _ in waits[::per_sub]]
        fence = waits[::per_sub][-1][1].fence     # the last sub-chunk waits for its inputs
        assert fence == (k > 0)
        gaps = np.diff(starts).tolist()
        assert gaps[:-1] == [chain.interval] * (chain.subs - 2), (k, starts)
        assert gaps[-1] == chain.interval or (fence and gaps[-1] > chain.interval), (k, starts)
    # tiles after the first receive each sub-chunk during the one before (early RX)
    assert all(sum(i.op == Op.RX and i.early for i in p) == chain.subs - 1
               for p in chain.programs[1:])


def test_place_parts_is_the_optimum():
    """``place_parts``: of every placement a row of eastbound links can run (whole layers,
    or a layer split by output channels between two tiles: ``all_placements`` tries every
    cut), one whose busiest tile has the fewest weight tiles; none when no such placement
    exists, with a one-line error."""
    from lpu.host.chain import all_placements, part_cost, place_parts
    for cfg, layers in _random_shapes(12, max_layers=4):
        every = list(all_placements(cfg, layers))
        if not every:
            with pytest.raises(CompileError, match="no placement"):
                place_parts(cfg, layers)
            continue
        got = place_parts(cfg, layers)
        assert got in every

        def busiest(p, cfg=cfg, layers=layers):
            return max(part_cost(cfg, layers, t) for t in p)
        assert busiest(got) == min(busiest(p) for p in every)


@pytest.mark.parametrize("tiles,latency", [(2, 1), (3, 4)])
def test_split_layers_equal_reference(tiles, latency):
    """Every placement with a layer split between two tiles (random chains): the
    reference's bytes, one chip run and pipelined with one receive; the tile with a split
    layer's tail receives the layer's input and then the head's columns in one RX. A
    placement whose parts need vectors no link brings is refused."""
    from lpu.host.chain import all_placements, compile_pipeline
    cfg = replace(preset("tiny"), tiles=tiles, link_latency=latency)
    rng = np.random.default_rng(40 + tiles)
    tried = 0
    while tried < 6:
        A, layers = _chain(rng, cfg, M=6, n_layers=tiles)
        nt = [-(-B.shape[1] // cfg.lanes) for B, _, _ in layers]
        splits = [p for p in all_placements(cfg, layers)
                  if any((a, e) != (0, nt[j]) for t in p for j, a, e in t)]
        for placement in splits[:2]:
            tried += 1
            ref = _reference(A, layers)
            chain = compile_chain(cfg, A, layers, placement)
            out, _, _ = run_chain_on_model(cfg, chain)
            assert np.array_equal(out[:, :ref.shape[1]], ref), placement
            for run, parts in zip(chain.runs, placement):
                j, a, _ = parts[0]
                if a and j < len(layers) - 1:       # a tail: the input and the head's rows
                    rx = [i for i in run.program if i.op == Op.RX]
                    assert [i.count for i in rx] == [run.x_words * (j > 0) + a * A.shape[0]]
            pipe = compile_pipeline(cfg, A, layers, 2, 3, placement)
            out, _, _ = run_chain_on_model(cfg, pipe)
            assert np.array_equal(out[:, :ref.shape[1]], ref), placement
    # tile 1 has only the tail of layer 0: nothing brings it the head's columns for layer 1
    cfg3 = replace(cfg, tiles=3)
    A, layers = _chain(rng, cfg3, M=6, n_layers=2)
    B, bias, q = layers[0]
    layers[0] = (np.zeros((B.shape[0], 8), np.int8), np.zeros(8, np.int32),
                 replace(q, multiplier=np.ones(8, np.int64) << 30, shift=np.zeros(8, np.int64)))
    layers[1] = (np.zeros((8, layers[1][0].shape[1]), np.int8), *layers[1][1:])
    bad = [[(0, 0, 1)], [(0, 1, 2)], [(1, 0, -(-layers[1][0].shape[1] // cfg.lanes))]]
    with pytest.raises(CompileError, match=r"tile 1's parts \[\(0, 1, 2\)\] need vectors no "
                                           r"link brings"):
        compile_chain(cfg3, A, layers, bad)
