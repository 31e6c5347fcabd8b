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

__all__ = ["ChainPlan", "compile_chain", "run_chain_on_model"]


@dataclass
class ChainPlan:
    plans: list          # per layer: its one-tile Plan
    runs: list           # per tile: the run it executes (program and memory image)

    @property
    def programs(self):
        return [r.program for r in self.runs]


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


def run_chain_on_model(cfg, chain, chip=None):
    """Run a chain on ``model.chip.ChipModel``; (result, per-tile counters, chip)."""
    from model.chip import ChipModel
    chip = chip or ChipModel(cfg)
    for tile, run in zip(chip.tiles, chain.runs):
        load_run(tile, run)
    counters = chip.run(chain.programs)
    block = collect(cfg, chain.plans[-1], chain.runs[-1], chip.tiles[-1].read_sram)
    return assemble(cfg, chain.plans[-1], [block]), counters, chip


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


def run_chains_on_sim(cfg, chains, monitor=False, timeout=1800):
    """Run chip runs (one ChainPlan each) in one simulator process (``tb/run_chip_job.py``);
    per chain: (result, per-tile counters, per-tile events or None)."""
    from .runtime import result_regions, run_sim_job
    job = {"monitor": monitor, "chains": [
        {"runs": c.runs, "read": result_regions(cfg, c.runs[-1])} for c in chains]}
    outs = run_sim_job("chip", cfg, "tb.run_chip_job", job, timeout)
    results = []
    for chain, out in zip(chains, outs):
        regions = {(b, a, n): words for (b, a, n), words in out["read"]}
        block = collect(cfg, chain.plans[-1], chain.runs[-1],
                        lambda b, a, n, regions=regions: regions[(b, a, n)])
        results.append((assemble(cfg, chain.plans[-1], [block]), out["counters"], out["events"]))
    return results


def run_network_on_chip(net, x, cfg, backend="model", rounding="single", timeline=None):
    """``net`` (a chain of FULLY_CONNECTED layers, one per tile) on a chip: the batch in
    chunks of as many rows as every layer takes in one run; each chunk is loaded into tile
    0, runs through every tile with no host in between, and is read back from the last.
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
    rows = chunk_rows(cfg, A, layers)
    chains = [compile_chain(cfg, A[m0:m0 + rows], layers) for m0 in range(0, A.shape[0], rows)]
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
