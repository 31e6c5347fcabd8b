"""A chain of quantised GEMM layers on a chip, one layer per tile, with no host in the loop:
layer i's int8 output rows stream over the link into tile i+1, which computes layer i+1.

Each layer is compiled as on one tile (``lpu.host.compiler.compile_gemm``, which must give
one run). Then, on every tile but the last, each VX sends its rows east (``link=1``)
instead of writing them to SRAM; on every tile but the first, the input matrix is not loaded
by the host: an ``RX`` at the top of the program receives it into the same words of bank
``A_BANK`` the host would have written. That works because a VX emits the rows of N tile
``nt`` as ``m = 0 .. M-1`` for ``nt = 0, 1, ...`` in that order, which is exactly the order of
the next layer's input words (``kt*M + m``, K tile ``kt`` = the previous N tile). Padding
lanes of a last N tile carry whatever the VXM made of them, and meet zero weight rows.
"""

from dataclasses import dataclass, replace

import numpy as np

from ..contract.hostport import load_run
from ..contract.isa import Insn, Op
from .compiler import A_BANK, CompileError, assemble, collect, compile_gemm

__all__ = ["ChainPlan", "compile_chain", "compile_pipeline", "pipeline_chains", "run_chain_on_model"]


@dataclass
class ChainPlan:
    plans: list          # per layer: its one-tile Plan (of one sub-chunk)
    runs: list           # per tile: the run it executes (program and memory image)
    subs: int = 1        # batch sub-chunks pipelined through the chip in this run
    rows: int = None     # real rows of the batch (the rest of the sub-chunks is padding)
    interval: int = None     # pipelined: cycles between two sub-chunks entering a tile (II)
    starts: list = None      # pipelined: per tile, the cycle its first sub-chunk's work starts
    name: str = "chain"

    @property
    def programs(self):
        return [r.program for r in self.runs]

    def _out_words(self):
        last = self.runs[-1]
        return last.n_tiles * last.m_count

    def read_regions(self, cfg):
        """(bank, addr, count) of the last tile's SRAM words holding the results."""
        from .runtime import result_regions
        n = self._out_words()
        return [(b, a + s * n, c) for s in range(self.subs)
                for b, a, c in result_regions(cfg, self.runs[-1])]

    def result(self, cfg, read_sram):
        """The (rows, N padded to lanes) result, read from the last tile with
        ``read_sram(bank, addr, count)``."""
        last, plan, n = self.runs[-1], self.plans[-1], self._out_words()
        out = np.concatenate([
            assemble(cfg, plan, [collect(cfg, plan, replace(last, out_base=last.out_base + s * n),
                                         read_sram)]) for s in range(self.subs)])
        return out if self.rows is None else out[:self.rows]


def compile_chain(cfg, A, layers):
    """``layers``: (B, bias, quant) per layer, one per tile of ``cfg``; every layer
    quantised (int8 flows between tiles) and small enough for one run."""
    if len(layers) != cfg.tiles:
        raise CompileError(f"{len(layers)} layers for a chip of {cfg.tiles} tiles "
                           f"(one layer per tile)")
    x = np.asarray(A)
    plans, runs = [], []
    for i, (B, bias, quant) in enumerate(layers):
        if quant is None:
            raise CompileError(f"layer {i}: layers on a chain are quantised (int8 rows stream "
                               f"between tiles)")
        if x.shape[1] != np.asarray(B).shape[0]:
            raise CompileError(f"layer {i}: K = {np.asarray(B).shape[0]}, but the previous "
                               f"layer gives {x.shape[1]} columns")
        plan = compile_gemm(cfg, x, B, bias, quant)
        if len(plan.runs) != 1:
            raise CompileError(f"layer {i} ({plan.M}x{plan.K}x{plan.N}) needs {len(plan.runs)} "
                               f"runs on a tile; a chain takes one run per layer")
        run = plan.runs[0]
        last = i == len(layers) - 1
        program = [replace(insn, link=1) if insn.op == Op.VX and not last else insn
                   for insn in run.program]
        sram = dict(run.sram)
        if i > 0:
            addr, words = sram.pop(A_BANK)
            program = [Insn(Op.RX, bank=A_BANK, base=addr, stride=1, count=len(words))] + program
        runs.append(replace(run, program=program, sram=sram, emits=last))
        plans.append(plan)
        x = np.zeros((plan.M, plan.N), np.int8)       # only its shape matters
    return ChainPlan(plans, runs)


def _model_chip(cfg, chain):
    """``chain`` on a fresh chip model: (result, counters, chip); ProgramError on a race."""
    from model.chip import ChipModel
    chip = ChipModel(cfg)
    for tile, run in zip(chip.tiles, chain.runs):
        load_run(tile, run)
    counters = chip.run(chain.programs)
    return chain.result(cfg, chip.tiles[-1].read_sram), counters, chip


def _pipelined_runs(cfg, one, chains, starts, ii):
    """Each tile's program for ``len(chains)`` sub-chunks: per sub-chunk a WAIT (``starts[k]``
    for the first, ``ii`` after that) and the one-sub-chunk program, its regions relocated:
    tile 0's inputs and the last tile's results at their own words per sub-chunk; the
    received inputs and the accumulators of the other tiles alternate between two regions
    (where they fit), so sub-chunk s+1 arrives while s is still being read."""
    from ..contract.isa import ProgramError, validate_program
    subs, T = len(chains), cfg.tiles
    runs = []
    for k, run in enumerate(one.runs):
        a_words = len(run.sram[A_BANK][1]) if A_BANK in run.sram else (
            run.program[0].count if run.program[0].op == Op.RX else 0)
        n_acc = run.m_count * (2 if run.n_tiles > 1 else 1)
        acc_flip = n_acc if 2 * n_acc <= cfg.acc_depth else 0
        a_flip = a_words if (k > 0 and 2 * a_words <= cfg.depth) else 0
        n_out = run.n_tiles * run.m_count
        prog = []
        for s in range(subs):
            prog.append(Insn(Op.WAIT, count=starts[k] if s == 0 else ii))
            for insn in run.program[:-1]:                    # (its HALT at the very end)
                if insn.op in (Op.MM, Op.VX):
                    insn = replace(insn, acc_base=insn.acc_base + (s % 2) * acc_flip)
                if insn.bank == A_BANK and insn.op in (Op.MM, Op.RX):
                    insn = replace(insn, base=insn.base + (s * a_words if k == 0 else
                                                           (s % 2) * a_flip))
                if k == T - 1 and insn.op == Op.VX:
                    insn = replace(insn, base=insn.base + s * n_out)
                prog.append(insn)
        prog.append(Insn(Op.HALT))
        try:
            validate_program(prog, cfg)
        except ProgramError as e:
            raise CompileError(f"tile {k}: {subs} sub-chunks: {e}") from None
        sram = dict(run.sram)
        if k == 0:
            sram[A_BANK] = (0, np.concatenate([c.runs[0].sram[A_BANK][1] for c in chains]))
        runs.append(replace(run, program=prog, sram=sram))
    return runs


def compile_pipeline(cfg, A, layers, sub_rows, subs):
    """The chain as a software pipeline: ``A``'s rows in ``subs`` sub-chunks of ``sub_rows``
    (zero rows pad the last), all in one chip run with no host in between. Tile k starts its
    work on sub-chunk s about ``starts[k] + s * interval`` (a ``WAIT`` before each
    sub-chunk's instructions): while tile k+1 works on sub-chunk s, tile k already works on
    s+1, so inference k+1 enters the first tile while inference k is in the last.

    The schedule comes from the model, which is exact: one sub-chunk through the chain gives
    each tile's first arrival (its receive opens the cycle before); the interval is the
    smallest, from the busiest unit's occupancy up, for which the chip model runs the whole
    pipeline with no race and with the same bytes as the sub-chunks one by one (at worst the
    longest tile's span, when every tile has drained before its next sub-chunk)."""
    from ..contract.isa import ProgramError
    A = np.asarray(A)
    rows = A.shape[0]
    if not 1 <= rows <= sub_rows * subs:
        raise CompileError(f"{rows} rows do not fill {subs} sub-chunks of {sub_rows}")
    Ap = np.zeros((sub_rows * subs, A.shape[1]), A.dtype)
    Ap[:rows] = A
    chains = [compile_chain(cfg, Ap[s * sub_rows:(s + 1) * sub_rows], layers) for s in range(subs)]
    one = chains[0]
    a_words = len(one.runs[0].sram[A_BANK][1])
    last = one.runs[-1]
    if subs * a_words > cfg.depth:
        raise CompileError(f"{subs} sub-chunks of input ({a_words} words each) do not fit "
                           f"tile 0's bank of {cfg.depth} words")
    if last.out_base + subs * last.n_tiles * last.m_count > cfg.depth:
        raise CompileError(f"{subs} sub-chunks of results do not fit the last tile's bank")
    # one sub-chunk alone, each program behind a WAIT 0 as in the pipeline
    probe = ChainPlan(one.plans, [replace(r, program=[Insn(Op.WAIT, count=0)] + r.program)
                                  for r in one.runs])
    _, counters, chip = _model_chip(cfg, probe)
    starts = [0] + [t.rx[1][0] - 2 for t in chip.timings[1:]]
    longest = max(t.cycles - s for t, s in zip(chip.timings, starts))
    if max(longest, *starts) >= 1 << 16:
        raise CompileError(f"a pipeline interval of {longest} cycles does not fit a WAIT")
    P = cfg.vxm_passes
    busiest = max(max(c["mxm_busy"], c["lw_rows"], c["vx_rows"] * P) for c in counters)
    want = np.concatenate([_model_chip(cfg, c)[0] for c in chains])[:rows]

    def attempt(ii, n):
        plan = ChainPlan(one.plans, _pipelined_runs(cfg, one, chains[:n], starts, ii),
                         subs=n, rows=min(rows, n * sub_rows), interval=ii, starts=starts)
        try:
            got = _model_chip(cfg, plan)[0]
        except ProgramError:
            return None
        return plan if np.array_equal(got, want[:plan.rows]) else None

    for ii in range(max(1, busiest), longest + 1):     # first on three sub-chunks, then all
        if attempt(ii, min(subs, 3)) is not None:
            plan = attempt(ii, subs)
            if plan is not None:
                return plan
    raise CompileError(f"no pipeline interval up to {longest} cycles runs without a race")


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


def chunk_rows(cfg, A, layers):
    """The most rows of ``A`` a chain takes in one chip run (every layer in one run)."""
    best, rows = 0, 1
    while rows <= A.shape[0]:
        try:
            compile_chain(cfg, A[:rows], layers)
        except CompileError:
            break
        best, rows = rows, rows * 2
    if best == 0:
        raise CompileError("a layer of the chain does not fit one tile run even for one row")
    lo, hi = best, min(2 * best, A.shape[0] + 1)         # the largest that fits, in between
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            compile_chain(cfg, A[:mid], layers)
            lo = mid
        except CompileError:
            hi = mid
    return lo


def most_subs(cfg, A, layers, sub_rows):
    """How many sub-chunks of ``sub_rows`` one pipelined chip run holds: tile 0's inputs,
    the last tile's results and every tile's program must fit."""
    one = compile_chain(cfg, A[:sub_rows], layers)
    a_words = len(one.runs[0].sram[A_BANK][1])
    last = one.runs[-1]
    n_out = last.n_tiles * last.m_count
    body = max(len(r.program) for r in one.runs)          # (with its HALT: a WAIT's place)
    return max(0, min(cfg.depth // a_words, (cfg.depth - last.out_base) // n_out,
                      (cfg.imem_depth - 1) // body))


def pipeline_chains(cfg, A, layers):
    """The chip runs that carry batch ``A`` through the chain, pipelined: the sub-chunk size
    (a power of two up to the most rows one run takes) whose runs the model predicts take
    the fewest cycles in all, and as many sub-chunks per run as fit."""
    A = np.asarray(A)
    B = A.shape[0]
    most = chunk_rows(cfg, A, layers)
    sizes = sorted({min(most, 1 << k) for k in range(8)} | {min(most, B)})
    best = None
    for sub in sizes:
        per_run = most_subs(cfg, A, layers, sub)
        if per_run == 0:
            continue
        rows_per_run = sub * per_run
        try:
            chains = [compile_pipeline(cfg, A[r:r + rows_per_run], layers, sub,
                                       -(-min(rows_per_run, B - r) // sub))
                      for r in range(0, B, rows_per_run)]
        except CompileError:
            continue
        cycles = sum(max(c["cycles"] for c in run_chain_on_model(cfg, ch)[1]) for ch in chains)
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
        regions = {(b, a, n): words for (b, a, n), words in out["read"]}
        result = chain.result(cfg, lambda b, a, n, regions=regions: regions[(b, a, n)])
        results.append((result, out["counters"], out["events"]))
    return results


def run_network_on_chip(net, x, cfg, backend="model", rounding="single", timeline=None):
    """``net`` (a chain of FULLY_CONNECTED layers, one per tile) on a chip: the batch in
    pipelined chip runs (:func:`pipeline_chains`); each run's inputs are loaded into tile 0,
    its sub-chunks stream through every tile with no host in between, the tiles working on
    consecutive sub-chunks at once, and the results are read back from the last.
    Returns (output, per-tile layer, per-chunk per-tile counters, chains); ``timeline``: a
    list to append each chunk's per-tile timeline entries to (``lpu.host.trace``)."""
    from .network import check_input
    from .runtime import host_port_split
    from .trace import timing_events
    check_input(net, x)
    chain_layers = network_layers(net, rounding)
    if len(chain_layers) != cfg.tiles:
        raise CompileError(f"the network has {len(chain_layers)} tile layers; --tiles is "
                           f"{cfg.tiles} (one layer per tile)")
    layers = [(B, bias, q) for _, B, bias, q in chain_layers]
    A = x.reshape(x.shape[0], -1)
    chains = pipeline_chains(cfg, A, layers)
    if backend == "model":
        outs = []
        for chain in chains:
            out, counters, chip = run_chain_on_model(cfg, chain)
            outs.append((out, counters, [timing_events(t) for t in chip.timings]))
    elif backend == "sim":
        outs = run_chains_on_sim(cfg, chains, monitor=timeline is not None)
    else:
        raise CompileError(f"--tiles > 1 runs on the model or sim back end, not '{backend}'")
    N = chain_layers[-1][1].shape[1]
    result = np.concatenate([out[:, :N] for out, _, _ in outs])
    if timeline is not None:
        for chain, (_, counters, events) in zip(chains, outs):
            timeline.append([{"program": run.program, "events": ev, "counters": c,
                              "host": host_port_split(cfg, run)}
                             for run, c, ev in zip(chain.runs, counters, events)])
    out_shape = (x.shape[0],) + tuple(net.tensors[net.output].shape[1:])
    return (result.reshape(out_shape), [layer for layer, *_ in chain_layers],
            [c for _, c, _ in outs], chains)
