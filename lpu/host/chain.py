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
