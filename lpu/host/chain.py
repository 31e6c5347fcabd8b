"""A chain of quantised GEMM layers on a chip, a group of consecutive layers per tile (a
stage), with no host in the loop: the last layer of stage k streams its int8 output rows
over the link into tile k+1, which computes stage k+1.

Each layer is compiled as on one tile (``lpu.host.compiler.compile_gemm``, which must give
one run). A tile's stage is those runs one after another in one program (:func:`_stage_run`):
its weights side by side in the weight banks, its parameter rows one after another; the
first layer reads the tile's input from bank ``A_BANK``, every later layer reads the layer
before it from one of two regions of bank ``INTER_BANK`` that it writes in turn, behind a
``WAIT`` the compiler fits with the model (:func:`_fit_waits`: the smallest count for which
no read comes before the write it needs). On every tile but the last, the stage's last VX
sends its rows east (``link=1``) instead of writing them to SRAM; on every tile but the
first, the input matrix is not loaded by the host: an ``RX`` at the top of the program
receives it into the words of bank ``A_BANK`` the host would have written. That works
because a VX emits the rows of N tile ``nt`` as ``m = 0 .. M-1`` for ``nt = 0, 1, ...`` in
that order, which is exactly the order of the next layer's input words (``kt*M + m``, K tile
``kt`` = the previous N tile). Padding lanes of a last N tile carry whatever the VXM made of
them, and meet zero weight rows. Which layers go on which tile: :func:`place_layers`.

A layer can also be split by output channels (whole N tiles) between two neighbouring tiles
(:func:`place_parts`, rules in :func:`split_ok`): the head tile computes the first N tiles,
the tail tile the rest. Both need the layer's input: for the first layer the host loads it
into both; otherwise the head tile computed the layer before it and sends that layer's
output east too (its VXs ``link=1, keep=1``: each row sent and written), for its own part.
The tail tile receives, in one RX, the layer's input and then the head's columns (``recv``
words after the input in ``A_BANK``), and computes the next layer from those and its own
columns (its MMs read each K tile where it lies). When the split layer is the chain's last,
each of the two tiles keeps its columns and the host reads both (:meth:`ChainPlan.result`).
A row of tiles joined by eastbound links can do no more than that without a tile that
forwards what it receives.
"""

from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from ..contract.hostport import load_run
from ..contract.isa import Insn, Op
from .compiler import A_BANK, OUT_BANK, CompileError, Run, assemble, collect, compile_gemm

__all__ = ["ChainPlan", "compile_chain", "compile_pipeline", "pipeline_chains",
           "place_layers", "place_parts", "run_chain_on_model", "run_layers_on_chip"]

INTER_BANK = OUT_BANK       # a stage's activations between its layers (two regions)
MODES = ("stream", "ahead", "plain")    # how a pipeline's tiles receive (_pipelined_runs)


@dataclass
class StageRun(Run):
    """One tile's run of a chain: a compiled :class:`Run` and where its words go."""
    parts: tuple = ()        # (layer, first N tile, end N tile) of each part it computes
    x_words: int = 0         # A_BANK words its first part reads (the host's or received)
    recv: int = 0            # A_BANK words received after them: a split layer's head rows
    host_in: bool = False    # the host loads its input (else its RX receives it)
    result_pcs: frozenset = frozenset()     # the VXs that write the chain's results

    @property
    def seg(self):
        """A_BANK words one sub-chunk takes."""
        return self.x_words + self.recv


@dataclass
class ChainPlan:
    plans: list          # per layer: its one-tile Plan (of one sub-chunk)
    runs: list           # per tile: the run it executes (program and memory image)
    subs: int = 1        # batch sub-chunks pipelined through the chip in this run
    rows: int = None     # real rows of the batch (the rest of the sub-chunks is padding)
    interval: int = None     # pipelined: cycles between two sub-chunks entering a tile (II)
    starts: list = None      # pipelined: per tile, the cycle its first sub-chunk's work starts
    name: str = "chain"
    placement: list = None   # per tile: its parts, (layer, first N tile, end N tile) each
    cycles: int = None       # pipelined: the run's cycles, as the chip model predicts them
    part_plans: list = None  # per tile: the one-tile Plan of each of its parts

    @property
    def programs(self):
        return [r.program for r in self.runs]

    def describe(self, cfg):
        """The placement in words: per tile its layers, a split layer's part as
        ``layer[first:end]`` in N tiles."""
        nt = [-(-p.N // cfg.lanes) for p in self.plans]
        return " | ".join(" ".join(str(j) if (a, e) == (0, nt[j]) else f"{j}[{a}:{e}]"
                                   for j, a, e in tile) for tile in self.placement)

    def _result_tiles(self):
        """(tile, its run, the Plan of its part of the last layer, that part's first N tile)
        of every tile holding results: the last, and the one before it when the last layer
        is split between them."""
        return [(k, run, self.part_plans[k][-1], run.parts[-1][1])
                for k, run in enumerate(self.runs) if run.result_pcs]

    def read_regions(self, cfg):
        """(tile, bank, addr, count) of the SRAM words holding the results."""
        from .runtime import result_regions
        return [(k, b, a + s * run.n_tiles * run.m_count, c)
                for k, run, _, _ in self._result_tiles() for s in range(self.subs)
                for b, a, c in result_regions(cfg, run)]

    def result(self, cfg, read_sram):
        """The (rows, N padded to lanes) result, read from the tiles holding it with
        ``read_sram(tile, bank, addr, count)``."""
        L = cfg.lanes
        blocks = []
        for k, run, plan, nt0 in self._result_tiles():
            n = run.n_tiles * run.m_count
            part = np.concatenate([
                assemble(cfg, plan, [collect(
                    cfg, plan, replace(run, out_base=run.out_base + s * n),
                    lambda b, a, c, k=k: read_sram(k, b, a, c))]) for s in range(self.subs)])
            blocks.append((nt0, part))
        N = max(nt0 * L + p.shape[1] for nt0, p in blocks)
        out = np.zeros((blocks[0][1].shape[0], -(-N // L) * L), np.int8)
        for nt0, part in blocks:
            out[:, nt0 * L:nt0 * L + part.shape[1]] = part
        return out if self.rows is None else out[:self.rows]


def place_layers(cfg, layers):
    """Which layers each tile computes: consecutive groups, one per tile (a list of counts),
    with the least predicted time on the busiest tile, per input row in weight tiles: its
    layers' weight tiles, ``ceil(K/L) * ceil(N/L)`` each, and, on every tile but the first,
    the weight tiles the tile before it works through while it sends the N tiles of its last
    layer but the last (``ceil(K/L) * (ceil(N/L) - 1)``): a tile's MMs wait until all of its
    input has arrived. The groups are the exact optimum (a dynamic program over the cuts)."""
    T, n = cfg.tiles, len(layers)
    if not 1 <= T <= n:
        raise CompileError(f"{n} layers for a chip of {T} tiles (at least one layer per tile)")
    cost, spread = stage_costs(cfg, layers)
    pre = [0] + [int(c) for c in np.cumsum(cost)]

    @lru_cache(None)
    def best(t, i):             # the first i layers on t tiles: (busiest tile's time, counts)
        if t == 1:
            return pre[i], (i,)
        return min((max(best(t - 1, j)[0], pre[i] - pre[j] + spread[j - 1]),
                    best(t - 1, j)[1] + (i - j,)) for j in range(t - 1, i))
    return list(best(T, n)[1])


def stage_costs(cfg, layers):
    """Per layer: its weight tiles, and those of all its N tiles but the last (what
    :func:`place_layers` weighs)."""
    kt, nt = _k_tiles(cfg, layers), _n_tiles(cfg, layers)
    return [k * n for k, n in zip(kt, nt)], [k * (n - 1) for k, n in zip(kt, nt)]


def _k_tiles(cfg, layers):
    return [-(-np.shape(B)[0] // cfg.lanes) for B, _, _ in layers]


def _n_tiles(cfg, layers):
    return [-(-np.shape(B)[1] // cfg.lanes) for B, _, _ in layers]


def split_ok(parts, n_layers):
    """Whether one tile's parts (``(layer, first N tile, end N tile, the layer's N tiles)``,
    consecutive) can run on a tile of a row with eastbound links: a layer is cut at most
    once; a tile that starts with a split layer's tail also computes the next layer whole
    (it alone has all of the split layer's output: its own rows and the head's, received),
    unless the split layer is the chain's last; a tile that ends with a split layer's head
    computes the layer before it whole (it sends that layer's output east as well as
    keeping it: both halves need it), unless the split layer is the first (the host loads
    the input into both tiles)."""
    whole = {j for j, a, e, nt in parts if (a, e) == (0, nt)}
    (j0, a0, _, _), (j1, a1, e1, nt1) = parts[0], parts[-1]
    if any(a > 0 and e < nt for _, a, e, nt in parts):
        return False
    if a0 > 0 and j0 < n_layers - 1 and j0 + 1 not in whole:
        return False
    return not (a1 == 0 and e1 < nt1 and j1 > 0 and j1 - 1 not in whole)


def _positions(cfg, layers):
    """Every (layer, N tile) of the chain in order, and each layer's N tiles."""
    NT = _n_tiles(cfg, layers)
    return [(j, a) for j in range(len(layers)) for a in range(NT[j])], NT


def _group(positions, NT):
    """Consecutive (layer, N tile) positions as parts, (layer, first, end, layer's N tiles)."""
    out = []
    for j, a in positions:
        if out and out[-1][0] == j:
            out[-1] = (j, out[-1][1], a + 1, NT[j])
        else:
            out.append((j, a, a + 1, NT[j]))
    return out


def part_cost(cfg, layers, parts):
    """A tile's predicted time per input row, in weight tiles: ``ceil(K/L)`` per N tile."""
    kt = _k_tiles(cfg, layers)
    return sum(kt[j] * (e - a) for j, a, e in parts)


def place_parts(cfg, layers):
    """Which parts of which layers each tile computes, layers split by output channels
    (whole N tiles) where that balances the tiles better: per tile its parts, ``(layer,
    first N tile, end N tile)``, with the fewest weight tiles (:func:`part_cost`) on the
    busiest tile among the placements :func:`split_ok` allows: a dynamic program over the
    cut positions, an N tile each. (A pipeline that receives with one RX,
    :func:`_pipelined_runs`, does not pay for the spread of the sends before it.)"""
    T = cfg.tiles
    pos, NT = _positions(cfg, layers)
    KT = _k_tiles(cfg, layers)
    pre = [0]
    for j, _ in pos:
        pre.append(pre[-1] + KT[j])
    pos.append((len(layers), 0))

    def valid(q, p):
        return split_ok(_group(pos[q:p], NT), len(layers))

    @lru_cache(None)
    def best(t, p):             # positions 0 .. p-1 on t tiles
        if t == 1:
            return (pre[p], (0,)) if valid(0, p) else (float("inf"), None)
        got = (float("inf"), None)
        for q in range(t - 1, p):
            if valid(q, p):
                b, cuts = best(t - 1, q)
                if cuts is not None and max(b, pre[p] - pre[q]) < got[0]:
                    got = (max(b, pre[p] - pre[q]), cuts + (q,))
        return got
    _, cuts = best(T, len(pos) - 1)
    if cuts is None:
        raise CompileError(f"{len(layers)} layers ({len(pos) - 1} N tiles of {cfg.lanes} "
                           f"output channels) for a chip of {T} tiles: no placement (each tile "
                           f"takes whole N tiles; a layer splits between two tiles at most)")
    cuts += (len(pos) - 1,)
    return [[(j, a, e) for j, a, e, _ in _group(pos[cuts[k]:cuts[k + 1]], NT)]
            for k in range(T)]


def all_placements(cfg, layers):
    """Every placement :func:`split_ok` allows, whole layers or split (small chains: it
    tries every cut)."""
    from itertools import combinations
    pos, NT = _positions(cfg, layers)
    for cuts in combinations(range(1, len(pos)), cfg.tiles - 1):
        bounds = (0,) + cuts + (len(pos),)
        tiles = [_group(pos[bounds[k]:bounds[k + 1]], NT) for k in range(cfg.tiles)]
        if all(split_ok(t, len(layers)) for t in tiles):
            yield [[(j, a, e) for j, a, e, _ in t] for t in tiles]


def _as_parts(cfg, layers, placement):
    """``placement`` as per-tile parts: layer counts (whole layers) or parts already."""
    NT = _n_tiles(cfg, layers)
    if placement and all(isinstance(n, (int, np.integer)) for n in placement):
        if (len(placement) != cfg.tiles or sum(placement) != len(layers)
                or min(placement) < 1):
            raise CompileError(f"placement {placement}: one group of layers per tile of "
                               f"{cfg.tiles}, {len(layers)} layers in all")
        first = np.cumsum([0] + list(placement))
        return [[(j, 0, NT[j]) for j in range(first[k], first[k + 1])]
                for k in range(cfg.tiles)]
    flat = [u for tile in placement for u in tile]
    want = [(j, a) for j in range(len(layers)) for a in range(NT[j])]
    got = [(j, a) for j, a0, e in flat for a in range(a0, e)]
    if len(placement) != cfg.tiles or got != want or any(not t for t in placement):
        raise CompileError(f"placement {placement}: every N tile of every layer once, in "
                           f"order, on {cfg.tiles} tiles")
    for k, tile in enumerate(placement):
        if not split_ok([(j, a, e, NT[j]) for j, a, e in tile], len(layers)):
            raise CompileError(f"placement {placement}: tile {k}'s parts {tile} need "
                               f"vectors no link brings")
    return [list(t) for t in placement]


def _stage_run(cfg, parts, plans, n_layers):
    """One tile's program and memory image for its parts (one run each, compiled alone):
    see the module's docstring. Each part after the first starts behind a ``WAIT 0`` that
    :func:`_fit_waits` sets. ``parts``: (layer, first N tile, end N tile, layer's N tiles)."""
    from ..contract.isa import ProgramError, validate_program
    runs = [p.runs[0] for p in plans]
    J, M = len(runs), runs[0].m_count
    j0, a0, _, _ = parts[0]
    tail = a0 > 0 and j0 < n_layers - 1     # a split layer's tail, its head's rows received
    head = parts[-1][2] < parts[-1][3] and J > 1    # ... its head: the layer before sent too
    last = parts[-1][0] == n_layers - 1
    x_words = len(runs[0].sram[A_BANK][1])
    recv = a0 * M if tail else 0
    inter = max((r.n_tiles * r.m_count for r in runs[:-1]), default=0)
    regions = (0, inter)
    result_base = inter * min(2, J - 1)
    w_banks = [b for b in range(cfg.banks) if b not in (A_BANK, INTER_BANK)]
    program, weights, params, prow = [], {b: [] for b in w_banks}, {}, 0
    result_pcs = set()
    for j, run in enumerate(runs):
        if j > 0:
            program.append(Insn(Op.WAIT, count=0))
        for insn in run.program[:-1]:                       # (its HALT)
            if insn.op == Op.LW:            # its weight tile to the first bank with room
                bank = next((b for b in w_banks if (len(weights[b]) + 1) * cfg.lanes <= cfg.depth),
                            None)
                if bank is None:
                    raise CompileError(f"{J} layers on one tile: their weights do not fit banks "
                                       f"{w_banks} of {cfg.depth} words")
                words = run.sram[insn.bank][1]
                weights[bank].append(words[insn.base:insn.base + cfg.lanes])
                insn = replace(insn, bank=bank, base=(len(weights[bank]) - 1) * cfg.lanes)
            elif insn.op == Op.MM and j == 1 and tail and insn.base < a0 * M:
                insn = replace(insn, base=insn.base + x_words)     # the head's rows, received
            elif insn.op == Op.MM and j == 1 and tail:
                insn = replace(insn, bank=INTER_BANK, base=insn.base - a0 * M)   # the tail's
            elif insn.op == Op.MM and j > 0:
                insn = replace(insn, bank=INTER_BANK, base=insn.base + regions[(j - 1) % 2])
            elif insn.op == Op.VX:
                insn = replace(insn, prow=insn.prow + prow, base=insn.base - run.out_base)
                if j < J - 1:
                    insn = replace(insn, bank=INTER_BANK, base=insn.base + regions[j % 2])
                    if head and j == J - 2:             # the split layer's input, sent too
                        insn = replace(insn, link=1, keep=1)
                elif last:
                    insn = replace(insn, base=insn.base + result_base)
                    result_pcs.add(len(program))
                else:
                    insn = replace(insn, link=1)
            program.append(insn)
        params.update({row + prow: p for row, p in run.params.items()})
        prow += len(run.params)
    host_in = j0 == 0
    sram = {b: (0, np.concatenate(w)) for b, w in weights.items() if w}
    if host_in:
        sram[A_BANK] = (0, runs[0].sram[A_BANK][1])
    if recv or not host_in:
        program.insert(0, Insn(Op.RX, bank=A_BANK, base=x_words if host_in else 0, stride=1,
                               count=recv + (0 if host_in else x_words)))
        result_pcs = {p + 1 for p in result_pcs}
    program.append(Insn(Op.HALT))
    top = {b: len(w) for b, (_, w) in sram.items()}
    top[A_BANK] = max(top.get(A_BANK, 0), x_words + recv)
    top[INTER_BANK] = max(top.get(INTER_BANK, 0),
                          result_base + (runs[-1].n_tiles * runs[-1].m_count if last else 0))
    full = [b for b, n in top.items() if n > cfg.depth]
    if full:
        raise CompileError(f"{J} layers on one tile need {top[full[0]]} words of bank "
                           f"{full[0]}, which holds {cfg.depth}")
    if prow > cfg.param_depth:
        raise CompileError(f"{J} layers on one tile need {prow} parameter rows, the tile has "
                           f"{cfg.param_depth}")
    try:
        validate_program(program, cfg)
    except ProgramError as e:
        raise CompileError(f"{J} layers on one tile: {e}") from None
    fields = {f: getattr(runs[-1], f) for f in Run.__dataclass_fields__}
    fields.update(program=program, sram=sram, params=params, out_base=result_base, emits=last)
    return StageRun(**fields, parts=tuple((j, a, e) for j, a, e, _ in parts), x_words=x_words,
                    recv=recv, host_in=host_in, result_pcs=frozenset(result_pcs))


def _slice(B, bias, q, cols):
    """A layer's output channels ``cols``: its weights, bias and output stage."""
    B = np.asarray(B)
    N = B.shape[1]
    bias = np.zeros(N, np.int64) if bias is None else np.asarray(bias)
    q = replace(q, multiplier=np.broadcast_to(np.asarray(q.multiplier), (N,))[cols],
                shift=np.broadcast_to(np.asarray(q.shift), (N,))[cols])
    return B[:, cols], bias[cols], q


def compile_chain(cfg, A, layers, placement=None, fit=True):
    """``layers``: (B, bias, quant) per layer, every layer quantised (int8 flows between
    tiles) and small enough for one run; ``placement``: layers per tile (counts, whole
    layers), or per tile its parts (``(layer, first N tile, end N tile)``, a layer split by
    output channels between two tiles: :func:`place_parts`); default :func:`place_layers`.
    ``fit``: set each stage's WAITs (:func:`_fit_waits`); a pipeline sets them itself."""
    x = np.asarray(A)
    L = cfg.lanes
    placement = _as_parts(cfg, layers, place_layers(cfg, layers) if placement is None
                          else placement)
    plans, shapes = [], []
    for i, (B, bias, quant) in enumerate(layers):
        if quant is None:
            raise CompileError(f"layer {i}: layers on a chain are quantised (int8 rows stream "
                               f"between tiles)")
        if x.shape[1] != np.asarray(B).shape[0]:
            raise CompileError(f"layer {i}: K = {np.asarray(B).shape[0]}, but the previous "
                               f"layer gives {x.shape[1]} columns")
        shapes.append(x)
        plan = compile_gemm(cfg, x, B, bias, quant)
        if len(plan.runs) != 1:
            raise CompileError(f"layer {i} ({plan.M}x{plan.K}x{plan.N}) needs {len(plan.runs)} "
                               f"runs on a tile; a chain takes one run per layer")
        plans.append(plan)
        x = np.zeros((plan.M, plan.N), np.int8)       # only its shape matters
    NT = _n_tiles(cfg, layers)
    runs, part_plans = [], []
    for tile in placement:
        pp = [plans[j] if (a, e) == (0, NT[j]) else
              compile_gemm(cfg, shapes[j], *_slice(*layers[j], slice(a * L, e * L)))
              for j, a, e in tile]
        part_plans.append(pp)
        runs.append(_stage_run(cfg, [(j, a, e, NT[j]) for j, a, e in tile], pp, len(layers)))
    if fit:
        runs = _fit_waits(cfg, runs)[0]
    return ChainPlan(plans, runs, placement=placement, part_plans=part_plans)


def _fit_waits(cfg, runs, pipelined=False, stream=False):
    """Each stage's WAITs (before each layer after its first), tile by tile from the west
    with the vectors the tiles before it send: the smallest count for which the tile's model
    runs that layer with no race (it reads nothing before the layer before it has written
    it). ``pipelined``: each program behind a ``WAIT starts[k]``, two cycles before the
    tile's first arrival (0 on tile 0), as in a pipeline's first sub-chunk; ``stream``: the
    tile's RX moved ahead of that WAIT, ``early`` (as a pipeline that receives every
    sub-chunk with one RX has it), and the WAIT on the cycle its last vector arrives (its
    MMs no longer wait for them); returns (runs
    with their WAITs set, starts, per tile (its model after the run, its counters), or None
    for a chain with no WAIT to fit)."""
    from model.tile import TileModel
    from ..contract.isa import ProgramError
    if not pipelined and not any(i.op == Op.WAIT for r in runs for i in r.program):
        return runs, [0] * len(runs), None
    arrivals, out, starts, ran = [], [], [], []

    def model(run, prog, lead):
        tile = TileModel(cfg)
        load_run(tile, run)
        try:
            return tile, tile.run(lead + prog, arrivals)
        except ProgramError:
            return None

    for k, run in enumerate(runs):
        prog = list(run.program)
        rx = prog[:1] if stream and arrivals and prog[0].op == Op.RX else []
        if rx:
            starts.append(arrivals[-1][0])
            lead, prog = [replace(rx[0], early=1), Insn(Op.WAIT, count=starts[-1])], prog[1:]
        else:
            starts.append(arrivals[0][0] - 2 if k and arrivals else 0)
            lead = [Insn(Op.WAIT, count=starts[-1])] if pipelined else []
        for w in [i for i, insn in enumerate(prog) if insn.op == Op.WAIT]:
            end = next((i for i in range(w + 1, len(prog)) if prog[i].op == Op.WAIT), -1)
            tail = prog[w + 1:end] + [Insn(Op.HALT)]       # this layer only

            def ok(d, head=prog[:w], tail=tail, run=run, lead=lead):
                return model(run, head + [Insn(Op.WAIT, count=d)] + tail, lead) is not None
            lo, hi = -1, 1
            while not ok(hi):
                lo, hi = hi, 2 * hi
                if hi >= 1 << 16:
                    raise CompileError(f"tile {k}: no WAIT before instruction {w} makes its "
                                       f"layer race-free")
            while hi - lo > 1:
                mid = (lo + hi) // 2
                lo, hi = (lo, mid) if ok(mid) else (mid, hi)
            prog[w] = Insn(Op.WAIT, count=hi)
        result = model(run, prog, lead)
        if result is None:
            raise CompileError(f"tile {k}: its program races with every WAIT fitted")
        tile = result[0]
        # a WAIT the program reaches late issues late and moves the mark: make each count
        # the cycles its WAIT really comes after the one before, so that the stage's WAITs
        # add up to its span and a pipeline's next sub-chunk starts on its interval (each
        # WAIT then issues on mark + count, as before: the schedule is the one just run)
        issue, mark = tile.last_timing.issue, 0
        for p, insn in enumerate(lead + prog):
            if insn.op == Op.WAIT:
                if p >= len(lead):
                    prog[p - len(lead)] = Insn(Op.WAIT, count=issue[p] - mark)
                mark = issue[p]
        out.append(replace(run, program=rx + prog))
        ran.append(result)
        arrivals = [(c + cfg.link_latency, v) for c, v in tile.last_link]
    return out, starts, ran


def _model_chip(cfg, chain):
    """``chain`` on a fresh chip model: (result, counters, chip); ProgramError on a race."""
    from model.chip import ChipModel
    chip = ChipModel(cfg)
    for tile, run in zip(chip.tiles, chain.runs):
        load_run(tile, run)
    counters = chip.run(chain.programs)
    return chain.result(cfg, lambda k, b, a, n: chip.tiles[k].read_sram(b, a, n)), counters, chip


class _NoStream(CompileError):
    """A pipeline's inputs do not fit one receive (the ``stream`` mode)."""


def _pipelined_runs(cfg, one, chains, starts, ii, mode="ahead"):
    """Each tile's program for ``len(chains)`` sub-chunks: per sub-chunk a WAIT (``starts[k]``
    for the first, then ``ii`` less the stage's own WAITs) and the one-sub-chunk program, its
    regions relocated: tile 0's inputs and the last tile's results at their own words per
    sub-chunk; the received inputs and the accumulators of the other tiles alternate between
    two regions (where they fit), so sub-chunk s+1 arrives while s is still being read. A
    stage's activations between its layers need no second region: program order keeps a
    sub-chunk's first layer behind the last reads of the one before.

    ``mode``: ``"stream"``: one RX at the top, ``early``, receives every sub-chunk's inputs,
    each into its own words (``one``'s WAITs fitted with ``_fit_waits(stream=True)``: a
    sub-chunk's work starts once its inputs have arrived, and the next sub-chunk's never
    waits for a receive to open, so the interval need not cover the upstream tile's spread
    of sends). ``"ahead"`` (where the received inputs alternate): sub-chunk s+1's RX goes just before
    sub-chunk s's first MM, ``early`` (LW and MM do not wait for its vectors), so the tile
    receives s+1 while it computes s; it issues once s's RX has all of its vectors, which
    holds s's MMs back until then (sub-chunk 0's own RX holds its MMs back, and sub-chunk
    1's goes just after its first MM, so that sub-chunk 0 issues as its WAITs were fitted); the last sub-chunk, with no RX after it, starts behind a
    ``WAIT fence=1``, which waits until every received vector has landed. ``"plain"``: each
    sub-chunk's RX in its place."""
    from ..contract.isa import ProgramError, validate_program
    subs = len(chains)
    runs = []
    for k, run in enumerate(one.runs):
        body = run.program[:-1]                             # (its HALT at the very end)
        rx = body[0] if body and body[0].op == Op.RX else None
        x, seg = run.x_words, run.seg
        n_acc = max(i.acc_base + i.count for i in body if i.op in (Op.MM, Op.VX))
        acc_flip = n_acc if 2 * n_acc <= cfg.acc_depth else 0
        a_flip = seg if (not run.host_in and 2 * seg <= cfg.depth) else 0
        n_out = run.n_tiles * run.m_count
        inner = sum(i.count for i in body if i.op == Op.WAIT)
        ahead = mode == "ahead" and rx is not None and (a_flip or run.host_in) and subs > 1
        stream = mode == "stream" and rx is not None
        if stream and subs * rx.count > min(cfg.depth, (1 << 16) - 1):
            raise _NoStream(f"tile {k}: {subs} sub-chunks of input ({rx.count} words each) "
                               f"do not fit one receive into a bank of {cfg.depth} words")
        first_mm = next(p for p, i in enumerate(body) if i.op == Op.MM)

        def where(base, s, run=run, x=x, seg=seg, a_flip=a_flip, stream=stream):
            """Sub-chunk ``s``'s word of A_BANK for word ``base`` of one sub-chunk's."""
            if run.host_in:     # the host's inputs for every sub-chunk, then what arrives
                return base + s * x if base < x else subs * x + base - x + s * run.recv
            return base + (s * seg if stream else (s % 2) * a_flip)

        def relocate(insn, s, p, acc_flip=acc_flip, n_out=n_out, result_pcs=run.result_pcs,
                     where=where):
            if insn.op in (Op.MM, Op.VX):
                insn = replace(insn, acc_base=insn.acc_base + (s % 2) * acc_flip)
            if insn.bank == A_BANK and insn.op in (Op.MM, Op.RX):
                insn = replace(insn, base=where(insn.base, s))
            if p in result_pcs:
                insn = replace(insn, base=insn.base + s * n_out)
            return insn
        prog = [replace(rx, base=where(rx.base, 0), count=subs * rx.count, early=1)
                ] if stream else []
        for s in range(subs):
            prog.append(Insn(Op.WAIT, count=starts[k] if s == 0 else ii - inner,
                             fence=int(ahead and s == subs - 1)))
            for p, insn in enumerate(body):
                if (ahead and insn.op == Op.RX and s > 0) or (stream and insn.op == Op.RX):
                    continue                        # received during the sub-chunk before
                if ahead and p == first_mm and 0 < s < subs - 1:
                    prog.append(replace(relocate(rx, s + 1, 0), early=1))
                prog.append(relocate(insn, s, p))
                if ahead and p == first_mm and s == 0:     # (behind it: as the WAITs were fitted)
                    prog.append(replace(relocate(rx, 1, 0), early=1))
        prog.append(Insn(Op.HALT))
        try:
            validate_program(prog, cfg)
        except ProgramError as e:
            raise CompileError(f"tile {k}: {subs} sub-chunks: {e}") from None
        sram = dict(run.sram)
        if run.host_in:
            sram[A_BANK] = (0, np.concatenate([c.runs[k].sram[A_BANK][1] for c in chains]))
        runs.append(replace(run, program=prog, sram=sram))
    return runs


def _reference(A, layers):
    """The chain's result, straight from the definition (``model.gemm.reference_gemm``)."""
    from model.gemm import reference_gemm
    x = A
    for B, bias, q in layers:
        x = reference_gemm(x, B, bias, q)
    return x


def compile_pipeline(cfg, A, layers, sub_rows, subs, placement=None, hint=None, modes=None):
    """The chain as a software pipeline: ``A``'s rows in ``subs`` sub-chunks of ``sub_rows``
    (zero rows pad the last), all in one chip run with no host in between. Tile k starts its
    work on sub-chunk s about ``starts[k] + s * interval`` (a ``WAIT`` before each
    sub-chunk's instructions): while tile k+1 works on sub-chunk s, tile k already works on
    s+1, so inference k+1 enters the first tile while inference k is in the last.

    The schedule comes from the model, which is exact: one sub-chunk through the chain gives
    each tile's first arrival (its receive opens the cycle before) and its stage's WAITs;
    the interval is the smallest, from the busiest unit's occupancy up (scanned; over a
    range of more than 256 cycles, an exponential then a binary search; at worst the longest
    tile's span, when every tile has drained before its next sub-chunk), for which the chip model runs the pipeline with no race and with
    the bytes of the definition (``model.gemm.reference_gemm``, layer after layer).
    ``hint``: an interval to try first (the one found for another chunk of the batch). Of
    the pipelines in ``modes`` (:func:`_pipelined_runs`: one receive for every sub-chunk,
    each received during the sub-chunk before, or each in its place), the one the model
    says takes fewer cycles; by default the first of :data:`MODES` that gives one (one
    receive for all has never taken more cycles than the others where we measured: the
    chains of ``make bench``, the autoencoder on 2 tiles; ``tests/test_model_chip.py``)."""
    from ..contract.isa import ProgramError
    A = np.asarray(A)
    rows = A.shape[0]
    if not 1 <= rows <= sub_rows * subs:
        raise CompileError(f"{rows} rows do not fill {subs} sub-chunks of {sub_rows}")
    Ap = np.zeros((sub_rows * subs, A.shape[1]), A.dtype)
    Ap[:rows] = A
    chains = [compile_chain(cfg, Ap[s * sub_rows:(s + 1) * sub_rows], layers, placement,
                            fit=False) for s in range(subs)]
    one = chains[0]
    for k, run in enumerate(one.runs):
        if run.host_in and subs * run.seg > cfg.depth:
            raise CompileError(f"{subs} sub-chunks of input ({run.seg} words each) do not fit "
                               f"tile {k}'s bank of {cfg.depth} words")
        if run.result_pcs and run.out_base + subs * run.n_tiles * run.m_count > cfg.depth:
            raise CompileError(f"{subs} sub-chunks of results do not fit tile {k}'s bank")
    N = np.asarray(layers[-1][0]).shape[1]
    want = _reference(A, layers)
    fits = {}

    def fitted(stream):     # one sub-chunk through the chain, its WAITs fitted (and run)
        if stream not in fits:
            runs, starts, ran = _fit_waits(cfg, one.runs, pipelined=True, stream=stream)
            counters = [c for _, c in ran]
            longest = max(t.last_timing.cycles - s for (t, _), s in zip(ran, starts))
            if max(longest, *starts) >= 1 << 16:
                raise CompileError(f"a pipeline interval of {longest} cycles does not fit a "
                                   f"WAIT")
            P = cfg.vxm_passes
            busiest = max(max(c["mxm_busy"], c["lw_rows"], c["vx_rows"] * P) for c in counters)
            inner = max(sum(i.count for i in r.program if i.op == Op.WAIT) for r in runs)
            fits[stream] = replace(one, runs=runs), starts, longest, max(1, busiest, inner)
        return fits[stream]

    def attempt(ii, n, mode):
        fit, starts, _, _ = fitted(mode == "stream")
        try:
            runs = _pipelined_runs(cfg, fit, chains[:n], starts, ii, mode)
        except _NoStream:
            return None
        plan = ChainPlan(fit.plans, runs, subs=n, rows=min(rows, n * sub_rows), interval=ii,
                         starts=starts, placement=fit.placement, part_plans=fit.part_plans)
        try:
            got, counters, _ = _model_chip(cfg, plan)
        except ProgramError:
            return None
        plan.cycles = max(c["cycles"] for c in counters)
        return plan if np.array_equal(got[:, :N], want[:plan.rows]) else None

    def first_ok(lo, n, mode):     # the smallest interval >= lo that works (searched)
        longest = fitted(mode == "stream")[2]
        if longest - lo <= 256:     # (a race-free interval need not be monotone: scan)
            return next((ii for ii in range(lo, longest + 1) if attempt(ii, n, mode)), None)
        hi, step = lo, 1
        while attempt(hi, n, mode) is None:
            if hi >= longest:
                return None
            lo, hi, step = hi, min(longest, hi + step), 2 * step
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if attempt(mid, n, mode) is None else (mid, hi)
        return hi

    def search(mode):
        _, _, longest, lowest = fitted(mode == "stream")
        if hint is not None and hint >= lowest:
            plan = attempt(hint, subs, mode)
            if plan is not None:
                return plan
        ii = first_ok(lowest, min(subs, 3), mode)   # three sub-chunks, all
        while ii is not None:
            plan = attempt(ii, subs, mode)
            if plan is not None:
                return plan
            ii = first_ok(ii + 1, min(subs, 3), mode) if ii < longest else None
        return None
    if modes is None:
        plan = next((p for p in map(search, MODES) if p is not None), None)
        plans = [] if plan is None else [plan]
    else:
        plans = [p for p in map(search, modes) if p is not None]
    if not plans:
        raise CompileError(f"no pipeline interval up to {fitted(False)[2]} cycles runs "
                           f"without a race")
    return min(plans, key=lambda p: p.cycles)


def run_chain_on_model(cfg, chain):
    """Run a chain on ``model.chip.ChipModel``; (result, per-tile counters, chip)."""
    return _model_chip(cfg, chain)


# ---- a network on a chip: `lpu run MODEL --tiles N` ------------------------------------
def network_layers(net, rounding):
    """The chain a network is on a chip: its tile layers, each FULLY_CONNECTED and fed by the
    previous one (host layers between them only RESHAPE), as ``(layer, B, bias, quant)``.
    Raises CompileError for a network that is not such a chain."""
    from .network import ROUNDING_POLICIES, SHAPE_OPS, tile_gemm
    policy = ROUNDING_POLICIES[rounding]
    out, feeding = [], None
    for layer in net.layers:
        if layer.op in SHAPE_OPS or layer.op == "RESHAPE":
            continue
        if layer.op != "FULLY_CONNECTED":
            raise CompileError(f"layer {layer.index} is {layer.op}: a network on a chip is a "
                               f"chain of FULLY_CONNECTED layers (run it with --tiles 1)")
        w = net.tensors[layer.inputs[1]].data
        if feeding is not None and feeding != w.shape[1]:
            raise CompileError(f"layer {layer.index} takes {w.shape[1]} inputs, the layer "
                               f"before gives {feeding}")
        dummy = np.zeros((1, w.shape[1]), np.int8)
        _A, B, bias, q, _shape = tile_gemm(net, layer, dummy, policy[layer.op])
        out.append((layer, B, bias, q))
        feeding = w.shape[0]
    return out


def chunk_rows(cfg, A, layers, placement=None):
    """The most rows of ``A`` a chain takes in one chip run (every layer in one run)."""
    compile_chain(cfg, A[:1], layers, placement, fit=False)   # (what does not fit one row says why)
    best, rows = 1, 2
    while rows <= A.shape[0]:
        try:
            compile_chain(cfg, A[:rows], layers, placement, fit=False)
        except CompileError:
            break
        best, rows = rows, rows * 2
    lo, hi = best, min(2 * best, A.shape[0] + 1)         # the largest that fits, in between
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            compile_chain(cfg, A[:mid], layers, placement, fit=False)
            lo = mid
        except CompileError:
            hi = mid
    return lo


def most_subs(cfg, A, layers, sub_rows, placement=None):
    """How many sub-chunks of ``sub_rows`` one pipelined chip run holds: the inputs the
    host loads, the results and every tile's program must fit."""
    one = compile_chain(cfg, A[:sub_rows], layers, placement, fit=False)
    body = max(len(r.program) for r in one.runs)          # (with its HALT: a WAIT's place)
    return max(0, min([cfg.depth // r.seg for r in one.runs if r.host_in] +
                      [(cfg.depth - r.out_base) // (r.n_tiles * r.m_count)
                       for r in one.runs if r.result_pcs] + [(cfg.imem_depth - 1) // body]))


def placements(cfg, layers):
    """The placements a chip's pipeline is tried with: whole layers per tile
    (:func:`place_layers`, where there are as many layers as tiles) and layers split by
    output channels (:func:`place_parts`), when that differs."""
    out = []
    if cfg.tiles <= len(layers):
        out.append(_as_parts(cfg, layers, place_layers(cfg, layers)))
    try:
        split = place_parts(cfg, layers)
    except CompileError:
        if not out:
            raise
        return out
    return out + ([split] if split not in out else [])


def pipeline_chains(cfg, A, layers, placement=None):
    """The chip runs that carry batch ``A`` through the chain, pipelined: of the
    :func:`placements` (or ``placement``) and the sub-chunk sizes (powers of two up to the
    most rows one run takes), the runs the model predicts take the fewest cycles in all, as
    many sub-chunks per run as fit."""
    A = np.asarray(A)
    if placement is None:
        found, errors = [], []
        for p in placements(cfg, layers):
            if found and max(part_cost(cfg, layers, t) for t in p) >= found[0][3]:
                continue        # (a split that balances the tiles no better)
            try:
                chains = pipeline_chains(cfg, A, layers, p)
                found.append((sum(ch.cycles for ch in chains), len(found), chains,
                              max(part_cost(cfg, layers, t) for t in p)))
            except CompileError as e:
                errors.append(e)
        if not found:
            raise errors[0]
        return min(found)[2]
    B = A.shape[0]
    most = chunk_rows(cfg, A, layers, placement)
    sizes = sorted({min(most, 1 << k) for k in range(8)} | {min(most, B)})
    best = None
    for sub in sizes:
        per_run = most_subs(cfg, A, layers, sub, placement)
        if per_run == 0:
            continue
        rows_per_run = sub * per_run
        chains = []
        try:
            for r in range(0, B, rows_per_run):
                chains.append(compile_pipeline(
                    cfg, A[r:r + rows_per_run], layers, sub, -(-min(rows_per_run, B - r) // sub),
                    placement, hint=chains[0].interval if chains else None))
        except CompileError:
            continue
        cycles = sum(ch.cycles for ch in chains)
        if best is None or cycles < best[0]:
            best = (cycles, chains)
    if best is None:
        raise CompileError("no sub-chunk size gives a pipeline that fits the tiles")
    return best[1]


def run_chains_on_sim(cfg, chains, monitor=False, timeout=1800):
    """Run chip runs (one ChainPlan each) in one simulator process (``tb/run_chip_job.py``);
    per chain: (result, per-tile counters, per-tile events or None)."""
    from .runtime import run_sim_job
    job = {"monitor": monitor, "chains": [
        {"runs": c.runs, "read": c.read_regions(cfg)} for c in chains]}
    outs = run_sim_job("chip", cfg, "tb.run_chip_job", job, timeout)
    results = []
    for chain, out in zip(chains, outs):
        regions = dict(out["read"])
        result = chain.result(cfg, lambda *r, regions=regions: regions[r])
        results.append((result, out["counters"], out["events"]))
    return results


def run_network_on_chip(net, x, cfg, backend="model", rounding="single", timeline=None,
                        placement=None):
    """``net`` (a chain of FULLY_CONNECTED layers) on a chip: the batch in
    pipelined chip runs (:func:`pipeline_chains`); each run's inputs are loaded into tile 0,
    its sub-chunks stream through every tile with no host in between, the tiles working on
    consecutive sub-chunks at once, and the results are read back from the last.
    Returns (output, per-tile layer, per-chunk per-tile counters, chains); ``timeline``: a
    list to append each chunk's per-tile timeline entries to (``lpu.host.trace``);
    ``placement``: as :func:`compile_chain` takes it (default: the faster of
    :func:`placements`)."""
    from .network import check_input
    check_input(net, x)
    chain_layers = network_layers(net, rounding)
    layers = [(B, bias, q) for _, B, bias, q in chain_layers]
    result, counters, chains = run_layers_on_chip(cfg, x.reshape(x.shape[0], -1), layers,
                                                  backend, timeline, placement)
    out_shape = (x.shape[0],) + tuple(net.tensors[net.output].shape[1:])
    return result.reshape(out_shape), [layer for layer, *_ in chain_layers], counters, chains


def run_layers_on_chip(cfg, A, layers, backend="model", timeline=None, placement=None):
    """A chain of quantised layers ``(B, bias, quant)`` on a chip, batch ``A`` in pipelined
    chip runs (:func:`pipeline_chains`): (the int8 result, per-chunk per-tile counters,
    chains); ``timeline`` as in :func:`run_network_on_chip`. ``lpu run --tiles`` and ``lpu
    gemm`` with several B matrices both come here."""
    from .runtime import host_port_split
    from .trace import timing_events
    chains = pipeline_chains(cfg, A, layers, placement)
    if backend == "model":
        outs = []
        for chain in chains:
            out, counters, chip = run_chain_on_model(cfg, chain)
            outs.append((out, counters, [timing_events(t) for t in chip.timings]))
    elif backend == "sim":
        outs = run_chains_on_sim(cfg, chains, monitor=timeline is not None)
    else:
        raise CompileError(f"a chip runs on the model or sim back end, not '{backend}'")
    N = np.shape(layers[-1][0])[1]
    result = np.concatenate([out[:, :N] for out, _, _ in outs])
    if timeline is not None:
        for chain, (_, counters, events) in zip(chains, outs):
            timeline.append([{"program": run.program, "events": ev, "counters": c,
                              "host": host_port_split(cfg, run)}
                             for run, c, ev in zip(chain.runs, counters, events)])
    return result, [c for _, c, _ in outs], chains
