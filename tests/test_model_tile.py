"""The ISA-level model: GEMMs through compiler + model equal the reference semantics; the
schedule obeys its stated rules; racing programs are refused."""

import numpy as np
import pytest

from lpu.host.compiler import Quant, compile_gemm
from model.gemm import reference_gemm
from lpu.contract.config import PRESETS, preset
from lpu.contract.isa import Insn, Op, ProgramError
from lpu.host.runtime import run_gemm
from model.tile import TileModel, schedule


def random_quant(rng, N):
    return Quant(multiplier=rng.integers(0, 1 << 31, N), shift=rng.integers(-31, 31, N),
                 output_zero_point=int(rng.integers(-128, 128)),
                 input_zero_point=int(rng.integers(-128, 128)),
                 activation_min=-100, activation_max=90)


@pytest.mark.parametrize("name", list(PRESETS))
def test_gemm_model_equals_reference(name):
    cfg = preset(name)
    rng = np.random.default_rng(11)
    shapes = [(1, 1, 1), (1, 37, 5), (13, 1, 29), (cfg.lanes, cfg.lanes, cfg.lanes),
              (2 * cfg.lanes + 3, 3 * cfg.lanes - 1, cfg.lanes + 5), (97, 31, 17)]
    for M, K, N in shapes:
        A = rng.integers(-128, 128, (M, K), dtype=np.int8)
        B = rng.integers(-128, 128, (K, N), dtype=np.int8)
        bias = rng.integers(-(1 << 31), 1 << 31, N).astype(np.int32)
        for q in (None, random_quant(rng, N)):
            out, counters, plan = run_gemm(cfg, A, B, bias, q, "model")
            np.testing.assert_array_equal(out, reference_gemm(A, B, bias, q),
                                          err_msg=f"{name} {M}x{K}x{N} quant={q is not None}")
            assert out.dtype == (np.int8 if q else np.int32)


def test_int32_wraps_mod_2_32():
    cfg = preset("tiny")
    K = 200
    A = np.full((3, K), -128, np.int8)
    B = np.full((K, 2), -128, np.int8)
    bias = np.array([2**31 - 1, -2**31], np.int32)
    out, _, _ = run_gemm(cfg, A, B, bias)
    want = ((K * 16384 + bias.astype(np.int64) + 2**31) % 2**32) - 2**31
    np.testing.assert_array_equal(out, np.broadcast_to(want, (3, 2)))


def test_large_gemm_is_split_and_exact():
    cfg = preset("tiny")
    rng = np.random.default_rng(5)
    A = rng.integers(-128, 128, (300, 70), dtype=np.int8)
    B = rng.integers(-128, 128, (70, 90), dtype=np.int8)
    plan = compile_gemm(cfg, A, B)
    assert len(plan.runs) > 1
    out, _, _ = run_gemm(cfg, A, B)
    np.testing.assert_array_equal(out, reference_gemm(A, B))


def test_int32_k_split_when_k_does_not_fit():
    cfg = preset("tiny")
    rng = np.random.default_rng(6)
    K = cfg.depth * cfg.lanes // 2 + 9           # more weight rows than a bank holds
    A = rng.integers(-128, 128, (5, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, 3), dtype=np.int8)
    plan = compile_gemm(cfg, A, B)
    assert len({r.k_part for r in plan.runs}) > 1
    out, _, _ = run_gemm(cfg, A, B, np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(out, reference_gemm(A, B, np.arange(3)))


@pytest.mark.parametrize("name", ["tiny", "icebreaker"])
def test_quantised_k_split_over_runs(name):
    """A quantised K too large for one run is split into runs that continue the same
    accumulators (they persist between runs); only the last one requantises."""
    cfg = preset(name)
    rng = np.random.default_rng(5)
    M, K, N = 5, cfg.depth * cfg.lanes + 3, cfg.lanes + 1
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    bias = rng.integers(-(1 << 20), 1 << 20, N).astype(np.int32)
    for rounding in ("single", "double"):
        q = Quant(rng.integers(1 << 29, 1 << 31, N), np.full(N, -12), 3, -7, rounding=rounding)
        plan = compile_gemm(cfg, A, B, bias, q)
        assert sum(not r.emits for r in plan.runs) > 0, "K was not split"
        out, counters, plan = run_gemm(cfg, A, B, bias, q, "model")
        np.testing.assert_array_equal(out, reference_gemm(A, B, bias, q))


def test_schedule_rules():
    cfg = preset("tiny")
    L, A = cfg.lanes, cfg.mxm_latency
    prog = [Insn(Op.LW, bank=1, wbuf=0), Insn(Op.MM, bank=0, count=10, wbuf=0),
            Insn(Op.LW, bank=1, base=4, wbuf=1), Insn(Op.MM, bank=0, count=10, wbuf=1),
            Insn(Op.LW, bank=1, base=8, wbuf=0), Insn(Op.VX, bank=2, count=10),
            Insn(Op.HALT)]
    t = schedule(prog, cfg)
    lw0, mm0, lw1, mm1, lw2, vx, halt = t.issue
    F = cfg.fetch_latency                          # the first instruction's earliest cycle
    assert (lw0, mm0, lw1) == (F, F + 1, F + L)    # MM right behind LW; next LW after L reads
    assert mm1 == mm0 + 10                         # MM waits for the previous stream
    assert lw2 == mm0 + 10 + L - 2                 # buffer 0 free L-2 cycles after last use
    # VX waits for the last update to land: the last activation is read S + 9 cycles after
    # mm1, enters R later (the bank's read latency), leaves A after that, and is readable
    # acc_visible_delay after that
    S, R = cfg.stream_start_latency, cfg.sram_read_latency
    assert t.vx_first_read[5] == mm1 + S + 9 + R + A + cfg.acc_visible_delay
    assert t.cycles == halt + 1
    assert t.counters["mxm_busy"] == 20 and t.counters["insns"] == 7
    assert t.counters["stalls"] == t.cycles - 7


def test_race_is_refused():
    cfg = preset("tiny")
    dev = TileModel(cfg)
    # VX writes bank 0 word 0 while a later MM is reading it before the write lands
    prog = [Insn(Op.LW, bank=1, wbuf=0), Insn(Op.MM, bank=0, count=4, wbuf=0),
            Insn(Op.VX, bank=0, base=100, count=4, quant=1),
            Insn(Op.MM, bank=0, base=100, count=4, wbuf=0), Insn(Op.HALT)]
    with pytest.raises(ProgramError, match=r"race: instruction 3 reads bank 0 address 100"):
        dev.run(prog)


def test_runs_persist_state_like_hardware():
    cfg = preset("tiny")
    dev = TileModel(cfg)
    dev.write_sram(1, 0, np.eye(4, dtype=np.int8))
    dev.write_sram(0, 0, np.arange(16, dtype=np.int8).reshape(4, 4))
    dev.run([Insn(Op.LW, bank=1, wbuf=1), Insn(Op.HALT)])
    # a second program uses the weights the first one loaded
    dev.run([Insn(Op.MM, bank=0, count=4, wbuf=1), Insn(Op.VX, bank=2, count=4, quant=0),
             Insn(Op.HALT)])
    planes = [dev.read_sram((2 + p) % 4, 0, 4).view(np.uint8) for p in range(4)]
    x = np.stack(planes, -1).copy().view("<i4")[..., 0]
    np.testing.assert_array_equal(x, np.arange(16).reshape(4, 4))
