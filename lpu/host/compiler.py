"""GEMM compiler: an int8 GEMM (with optional bias and TFLite quantisation) -> one or more
*runs*, each a program plus a memory image for one preset, and the plan to assemble the
result from what the runs leave in SRAM.

Layout of one run (``L`` lanes, ``KT``/``NT`` tiles of K and N, ``Mc`` rows):

* bank 0: A, word ``kt*Mc + m`` = ``A[m, kt*L:(kt+1)*L]`` (zero padded);
* bank 1: weights, word ``(nt*KT + kt)*L + k`` = ``B[kt*L + k, nt*L:(nt+1)*L]``;
* int8 results: bank 2, word ``nt*Mc + m``; int32 results: byte plane p in bank
  ``(2 + p) % banks`` at ``out_base + nt*Mc + m``, above everything else in those banks;
* parameter row ``nt``: bias (with ``-input_zero_point * colsum(B)`` folded in), multiplier,
  shift, zero point and clamp of the tile's output channels;
* accumulators: N tiles alternate between rows ``[0, Mc)`` and ``[Mc, 2 Mc)``, so the VXM
  drains one tile while the MXM fills the next.

The program: for each N tile, for each K tile ``LW`` then ``MM`` (the next LW overlaps the
MM), then ``VX``; then ``HALT``. A GEMM too large for one run is split over M and N (and,
for int32 results, over K, summing the partial results mod 2**32 on the host).
"""

from dataclasses import dataclass, field

import numpy as np

from model.arith import wrap32
from model.vxm import rounding_code

from ..contract.isa import Insn, Op, validate_program

__all__ = ["Quant", "Run", "Plan", "compile_gemm", "CompileError"]

A_BANK, W_BANK, OUT_BANK = 0, 1, 2


class CompileError(ValueError):
    pass


@dataclass(frozen=True)
class Quant:
    """TFLite int8 fully-connected output stage; per-tensor values are broadcast."""
    multiplier: np.ndarray
    shift: np.ndarray
    output_zero_point: int = 0
    input_zero_point: int = 0
    activation_min: int = -128
    activation_max: int = 127
    rounding: str = "single"      # "single" (LiteRT today) or "double" (gemmlowp)


@dataclass
class Run:
    """One program and its memory image, and where its results go in the output."""
    program: list
    sram: dict                 # bank -> (addr, words (n, L) int8)
    params: dict               # row -> dict of parameters
    m0: int
    m_count: int
    n0: int
    n_tiles: int
    quant: bool
    out_base: int
    k_part: int                # which K slice this run sums (int32 K splitting)
    emits: bool = True         # leaves results in SRAM (not a quantised run's earlier K slice)


@dataclass
class Plan:
    M: int
    K: int
    N: int
    quant: bool
    runs: list = field(default_factory=list)
    macs: int = 0


def _layout(cfg, KT, NTc, Mc, quant):
    """Where everything of one run goes, or None when it does not fit:
    (bank and address of each weight tile in (nt, kt) order, out_base)."""
    L, D = cfg.lanes, cfg.depth
    if Mc < 1 or NTc < 1:
        return None
    acc_rows = Mc * (2 if NTc > 1 else 1)
    if acc_rows > cfg.acc_depth or NTc > cfg.param_depth:
        return None
    if NTc * (2 * KT + 1) + 1 > cfg.imem_depth:
        return None
    used = [0] * cfg.banks
    used[A_BANK] = KT * Mc
    if quant:
        used[OUT_BANK] = NTc * Mc
    # weight tiles fill bank 1, then every other bank but A's and the output's
    w_banks = [W_BANK] + [b for b in range(cfg.banks) if b not in (A_BANK, W_BANK, OUT_BANK)]
    places = []
    wi = 0
    for _ in range(NTc * KT):
        while wi < len(w_banks) and used[w_banks[wi]] + L > D:
            wi += 1
        if wi == len(w_banks):
            return None
        places.append((w_banks[wi], used[w_banks[wi]]))
        used[w_banks[wi]] += L
    if max(used) > D:
        return None
    if quant:
        return places, 0
    out_base = max(used[(OUT_BANK + p) % cfg.banks] for p in range(4))
    if out_base + NTc * Mc > D:
        return None
    return places, out_base


def _fits(cfg, KT, NTc, Mc, quant):
    return _layout(cfg, KT, NTc, Mc, quant) is not None


def _choose(cfg, M, KT, NT, quant, max_ntc=None):
    """The (N tiles, M rows) per run that need the fewest runs (then the most rows)."""
    best = None
    for NTc in range(min(NT, cfg.param_depth, max_ntc or NT), 0, -1):
        lo, hi = 0, M
        while lo < hi:                      # largest Mc that fits (monotone in Mc)
            mid = (lo + hi + 1) // 2
            if _fits(cfg, KT, NTc, mid, quant):
                lo = mid
            else:
                hi = mid - 1
        if lo >= 1:
            key = (-(-NT // NTc) * -(-M // lo), -lo)
            if best is None or key < best[0]:
                best = (key, (NTc, lo))
    return None if best is None else best[1]


def compile_gemm(config, A, B, bias=None, quant=None):
    """Compile ``A @ B (+ bias)`` (and the quantised output stage) for ``config``."""
    cfg = config
    L = cfg.lanes
    A = np.asarray(A)
    B = np.asarray(B)
    M, K = A.shape
    N = B.shape[1]
    bias = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
    is_q = quant is not None
    NT = -(-N // L)
    KT_total = -(-K // L)
    # K slices: as many K tiles per run as fit. int32: each slice's partial result is summed
    # on the host. Quantised: the slices of one N tile run back to back, accumulating into
    # the same accumulators (they persist between runs), and only the last one runs the VX
    KT = KT_total
    max_ntc = None
    while KT >= 1 and _choose(cfg, M, KT, NT, is_q, max_ntc) is None:
        KT = KT - 1 if KT > 1 else 0
        max_ntc = 1 if is_q else None
    if KT < 1:
        raise CompileError(f"GEMM {M}x{K}x{N} does not fit this configuration")
    NTc, Mc = _choose(cfg, M, KT, NT, is_q, max_ntc)

    # bias with the input zero point folded in: sum_k (a - izp) * b = a@b - izp * colsum(b)
    if is_q:
        izp = int(quant.input_zero_point)
        eff_bias = bias - izp * B.astype(np.int64).sum(axis=0)
    else:
        eff_bias = bias
    eff_bias = wrap32(eff_bias).astype(np.int64)

    Kp, Np = KT_total * L, NT * L
    Ap = np.zeros((M, Kp), np.int8)
    Ap[:, :K] = A
    Bp = np.zeros((Kp, Np), np.int8)
    Bp[:K, :N] = B
    plan = Plan(M, K, N, is_q, macs=M * K * N)
    if is_q and KT < KT_total:
        for nt0 in range(NT):
            for m0 in range(0, M, Mc):
                mc = min(Mc, M - m0)
                for k0 in range(0, KT_total, KT):
                    plan.runs.append(_one_run(
                        cfg, Ap, Bp, eff_bias, quant, k0, min(KT, KT_total - k0), nt0, 1,
                        m0, mc, first_k=(k0 == 0), last_k=(k0 + KT >= KT_total)))
        return plan
    for k0 in range(0, KT_total, KT):
        kts = min(KT, KT_total - k0)
        for nt0 in range(0, NT, NTc):
            ntc = min(NTc, NT - nt0)
            for m0 in range(0, M, Mc):
                mc = min(Mc, M - m0)
                plan.runs.append(_one_run(cfg, Ap, Bp, eff_bias, quant, k0, kts, nt0, ntc,
                                          m0, mc, first_k=(k0 == 0)))
    return plan


def _one_run(cfg, Ap, Bp, eff_bias, quant, k0, KT, nt0, NTc, m0, Mc, first_k, last_k=True):
    """One run over K tiles ``k0 .. k0+KT-1``. A quantised GEMM split over K continues the
    accumulators of the run before it (``first_k`` false) and requantises only in the run
    with the last K slice (``last_k``), which also adds the bias."""
    L = cfg.lanes
    is_q = quant is not None
    emits = last_k or not is_q          # int32 partial sums are all read back and summed
    a_words = np.concatenate([Ap[m0:m0 + Mc, (k0 + kt) * L:(k0 + kt + 1) * L] for kt in range(KT)])
    places, out_base = _layout(cfg, KT, NTc, Mc, is_q)
    sram = {A_BANK: [(0, a_words)]}
    for i, (bank, addr) in enumerate(places):
        nt, kt = divmod(i, KT)
        tile = Bp[(k0 + kt) * L:(k0 + kt + 1) * L, (nt0 + nt) * L:(nt0 + nt + 1) * L]
        sram.setdefault(bank, []).append((addr, tile))
    params = {}
    for nt in range(NTc):
        cols = slice((nt0 + nt) * L, (nt0 + nt + 1) * L)
        b = np.zeros(L, np.int64)
        seg = eff_bias[cols] if (last_k if is_q else first_k) else np.zeros(0, np.int64)
        b[:len(seg)] = seg
        p = dict(bias=b, multiplier=np.zeros(L, np.int64), shift=np.zeros(L, np.int64),
                 zero_point=0, act_min=0, act_max=0, rounding=0)
        if is_q:
            mult = np.zeros(L, np.int64)
            shift = np.zeros(L, np.int64)
            seg_m = quant.multiplier[cols]
            mult[:len(seg_m)] = seg_m
            shift[:len(seg_m)] = quant.shift[cols]
            p.update(multiplier=mult, shift=shift, zero_point=int(quant.output_zero_point),
                     act_min=int(quant.activation_min), act_max=int(quant.activation_max),
                     rounding=rounding_code(quant.rounding))
        params[nt] = p
    prog = []
    tile = 0
    for nt in range(NTc):
        region = (nt % 2) * Mc if NTc > 1 else 0
        for kt in range(KT):
            buf = tile % 2
            wbank, waddr = places[nt * KT + kt]
            prog.append(Insn(Op.LW, bank=wbank, base=waddr, stride=1, wbuf=buf))
            prog.append(Insn(Op.MM, bank=A_BANK, base=kt * Mc, stride=1, count=Mc,
                             acc_base=region, wbuf=buf,
                             accumulate=int(kt > 0 or (is_q and not first_k))))
            tile += 1
        if emits:
            prog.append(Insn(Op.VX, bank=OUT_BANK, base=out_base + nt * Mc, stride=1,
                             count=Mc, acc_base=region, quant=int(is_q), prow=nt))
    prog.append(Insn(Op.HALT))
    validate_program(prog, cfg)
    sram = {b: (0, np.concatenate([w for _, w in sorted(chunks, key=lambda c: c[0])]))
            for b, chunks in sram.items()}          # each bank's words are contiguous from 0
    return Run(prog, sram, params if emits else {}, m0, Mc, nt0, NTc, is_q, out_base, k0,
               emits)


def collect(cfg, plan, run, read_sram):
    """Pull one run's results out of SRAM with ``read_sram(bank, addr, count)``; returns
    (m0, n0 column, block) with block int8 (Mc, NTc*L) or int32, or None for a run that
    leaves no result."""
    L = cfg.lanes
    if not run.emits:
        return None
    n = run.n_tiles * run.m_count
    if run.quant:
        words = read_sram(OUT_BANK, run.out_base, n)           # (NTc*Mc, L)
        block = words.reshape(run.n_tiles, run.m_count, L).transpose(1, 0, 2)
        return block.reshape(run.m_count, run.n_tiles * L)
    planes = [read_sram((OUT_BANK + p) % cfg.banks, run.out_base, n).view(np.uint8)
              for p in range(4)]
    x = np.stack(planes, axis=-1).copy().view("<i4")[..., 0]  # (n, L)
    block = x.reshape(run.n_tiles, run.m_count, L).transpose(1, 0, 2)
    return block.reshape(run.m_count, run.n_tiles * L).astype(np.int32)


def assemble(cfg, plan, blocks):
    """Combine the runs' blocks (in plan order) into the (M, N) result."""
    L = cfg.lanes
    NTp = -(-plan.N // L) * L
    out = np.zeros((plan.M, NTp), np.int8 if plan.quant else np.int64)
    for run, block in zip(plan.runs, blocks):
        if block is None:
            continue
        rows = slice(run.m0, run.m0 + run.m_count)
        cols = slice(run.n0 * L, (run.n0 + run.n_tiles) * L)
        if plan.quant:
            out[rows, cols] = block
        else:
            out[rows, cols] += block.astype(np.int64)
    out = out[:, :plan.N]
    if not plan.quant:
        out = wrap32(out)
    return out
