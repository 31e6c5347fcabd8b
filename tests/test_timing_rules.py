"""Every scheduling rule earns its place (``lpu.contract.timing``).

For each rule, a program in which that rule alone decides an issue cycle is scheduled as the
rules say and with the rule moved one cycle earlier (``schedule(loosen=...)``). The data
hazards are then executed with the unit-level streaming models (``model.mxm``: per-cycle
weight versions and the accumulator timeline): at the rule's cycle the result equals the GEMM
oracle, one cycle earlier it does not. The structural rules show a port carrying two
transfers in one cycle when loosened, and none at the rule.
"""

from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest

from lpu.contract.config import preset
from lpu.contract.hostport import load_run
from lpu.contract.isa import Insn, Op
from lpu.contract.timing import RULES, Rules
from lpu.host.compiler import Quant, compile_gemm
from model.gemm import reference_gemm
from model.mxm import Activations, MatmulModel
from model.tile import TileModel, schedule
from model.vxm import requantize_row

PRESETS = ["tiny", "default"]     # one-lane-per-cycle VXM (4 passes) and fully parallel VXM


def _gemm(cfg, K_tiles=3, N_tiles=2):
    rng = np.random.default_rng(7)
    L = cfg.lanes
    M, K, N = 3 * L, K_tiles * L, N_tiles * L
    A = rng.integers(-128, 128, (M, K), dtype=np.int8)
    B = rng.integers(-128, 128, (K, N), dtype=np.int8)
    bias = rng.integers(-5000, 5000, N).astype(np.int32)
    # small enough a scale that no output saturates: a changed product shows
    q = Quant(multiplier=rng.integers(1 << 30, 1 << 31, N), shift=np.full(N, -9),
              output_zero_point=3)
    plan = compile_gemm(cfg, A, B, bias, q)
    assert len(plan.runs) == 1
    return plan.runs[0], reference_gemm(A, B, bias, q)


def dataflow(cfg, run, timing):
    """What the units compute for ``run`` when its instructions issue as ``timing`` says:
    weight rows written, activations entering and accumulator passes read on the cycles of
    ``timing``, through the exact streaming models. Returns the VXM's int8 rows per
    (bank, address) written."""
    L, P = cfg.lanes, cfg.vxm_passes
    R = Rules(cfg)
    sram = {b: words for b, (_, words) in run.sram.items()}   # every image starts at word 0
    mxm = MatmulModel(cfg)
    acts, reads, vx_rows = [], [], []
    for pc, insn in enumerate(run.program):
        i = timing.issue[pc]
        if insn.op == Op.LW:
            for r in range(L):
                mxm.write_weights(i + R.weight_write(r), insn.wbuf, r,
                                  sram[insn.bank][insn.base + r * insn.stride])
        elif insn.op == Op.MM:
            n = insn.count
            acts.append(Activations(i + R.activation_enter(np.arange(n)), np.full(n, insn.wbuf),
                                    sram[insn.bank][insn.base + insn.stride * np.arange(n)],
                                    insn.acc_base + np.arange(n), np.full(n, bool(insn.accumulate))))
        elif insn.op == Op.VX:
            r0 = timing.vx_first_read[pc]
            for e in range(insn.count):
                for k in range(P):            # pass k reads the row again for lanes k*G..
                    reads.append((r0 + R.vx_read(e) + k, insn.acc_base + e))
                vx_rows.append((insn, e))
    # weight writes must be given in cycle order per row: LWs issue in program order
    act = Activations.concat(acts, L)
    _, rows = mxm.run(act, [c for c, _ in reads], [a for _, a in reads])
    G = cfg.vxm_group
    out = {}
    for j, (insn, e) in enumerate(vx_rows):
        acc = np.concatenate([rows[j * P + k][k * G:(k + 1) * G] for k in range(P)])
        p = run.params[insn.prow]
        out[(insn.bank, insn.base + e * insn.stride)] = requantize_row(acc, p)
    return out


def settled(cfg, run, rows):
    """The same rows from the ISA-level model (which applies every update before a read)."""
    dev = TileModel(cfg)
    load_run(dev, run)
    dev.run(run.program)
    return {key: dev.read_sram(key[0], key[1], 1)[0] for key in rows}


def _acc_ready_run(cfg, run):
    """One MM, then a VX that reads the MM's *last* row first: the row whose update is
    visible last, so ``acc_ready`` is exact for it."""
    mm = next(i for i in run.program if i.op == Op.MM)
    lw = next(i for i in run.program if i.op == Op.LW)
    program = [lw, mm, Insn(Op.VX, bank=2, base=0, count=2, acc_base=mm.acc_base + mm.count - 1,
                            quant=1, prow=0), Insn(Op.HALT)]
    return SimpleNamespace(program=program, sram=run.sram, params=run.params)


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("rule", ["weight_guard", "acc_ready"])
def test_data_rule_is_necessary_and_safe(name, rule):
    cfg = preset(name)
    run, _ = _gemm(cfg)
    if rule == "acc_ready":
        run = _acc_ready_run(cfg, run)
    exact = schedule(run.program, cfg)
    early = schedule(run.program, cfg, loosen=[rule])
    assert early.issue != exact.issue or early.vx_first_read != exact.vx_first_read, \
        f"{rule} decides no cycle in this program"
    at_rule = dataflow(cfg, run, exact)
    for key, row in settled(cfg, run, at_rule).items():
        np.testing.assert_array_equal(at_rule[key], row, err_msg=f"{rule}: not safe at {key}")
    one_early = dataflow(cfg, run, early)
    assert any(not np.array_equal(one_early[k], at_rule[k]) for k in at_rule), \
        f"{rule} one cycle earlier changes no result"


@pytest.mark.parametrize("name", PRESETS)
def test_compiled_gemm_at_the_rules_equals_the_oracle(name):
    cfg = preset(name)
    run, want = _gemm(cfg)
    rows = dataflow(cfg, run, schedule(run.program, cfg))
    L = cfg.lanes
    got = np.zeros((run.m_count, run.n_tiles * L), np.int8)
    for nt in range(run.n_tiles):
        for m in range(run.m_count):
            got[m, nt * L:(nt + 1) * L] = rows[(2, run.out_base + nt * run.m_count + m)]
    np.testing.assert_array_equal(got[:, :want.shape[1]], want)


def _port_cycles(cfg, program, t):
    """Cycles each single-transfer port is used: per bank stream, weight port, array
    input, accumulator read port."""
    R = Rules(cfg)
    use = {"weight port": Counter(t.weight_rows), "array input": Counter(t.activations),
           "accumulator read port": Counter()}
    for pc, insn in enumerate(program):
        i = t.issue[pc]
        if insn.op in (Op.LW, Op.MM):
            n = R.lw_stream if insn.op == Op.LW else R.mm_stream(insn.count)
            use.setdefault(f"bank {insn.bank}", Counter()).update(range(i, i + n))
        elif insn.op == Op.VX:
            r0 = t.vx_first_read[pc]
            use["accumulator read port"].update(range(r0, r0 + R.vx_read(insn.count)))
    return {port: sorted(c for c, k in cnt.items() if k > 1) for port, cnt in use.items()}


def _structural_programs():
    """(rule, program, port) where the rule alone decides an issue cycle."""
    return [
        # an LW streaming the bank an MM is still streaming
        ("bank_free", [Insn(Op.MM, bank=0, count=12), Insn(Op.LW, bank=0, base=40, wbuf=1),
                       Insn(Op.HALT)], "bank 0"),
        # two LWs from different banks into different buffers
        ("lw_after_lw", [Insn(Op.LW, bank=0, wbuf=0), Insn(Op.LW, bank=1, wbuf=1),
                         Insn(Op.HALT)], "weight port"),
        # two MMs from different banks
        ("mm_after_mm", [Insn(Op.MM, bank=0, count=9), Insn(Op.MM, bank=1, count=9, acc_base=20),
                         Insn(Op.HALT)], "array input"),
        # two VXs back to back
        ("vx_after_vx", [Insn(Op.VX, bank=2, count=5, quant=1),
                         Insn(Op.VX, bank=3, count=5, acc_base=8, quant=1), Insn(Op.HALT)],
         "accumulator read port"),
    ]


@pytest.mark.parametrize("name", PRESETS)
@pytest.mark.parametrize("rule,program,port", _structural_programs(),
                         ids=[r for r, _, _ in _structural_programs()])
def test_structural_rule_is_necessary_and_safe(name, rule, program, port):
    cfg = preset(name)
    exact = schedule(program, cfg)
    early = schedule(program, cfg, loosen=[rule])
    assert early.issue != exact.issue, f"{rule} decides no cycle in this program"
    assert not any(_port_cycles(cfg, program, exact).values())
    assert _port_cycles(cfg, program, early)[port], \
        f"{rule} one cycle earlier puts no two transfers on the {port} in one cycle"


@pytest.mark.parametrize("name", PRESETS)
def test_halt_rule_waits_for_every_write(name):
    """HALT issues after every weight row, accumulator update and SRAM write of the run: at
    the rule none lands on or after the HALT cycle; one cycle earlier the last one does.
    (A write lands at the end of its cycle, so the host, which can look only from the cycle
    after HALT, would still see it: the rule keeps one cycle of margin, and the cycle counts
    the tile has always had.)"""
    cfg = preset(name)
    run, _ = _gemm(cfg)
    for t, lands_before_halt in ((schedule(run.program, cfg), True),
                                 (schedule(run.program, cfg, loosen=["halt"]), False)):
        halt = t.issue[-1]
        updates = [c + cfg.acc_update_delay for c in t.results]
        last = max(t.weight_rows + updates + t.sram_writes)
        assert (last < halt) == lands_before_halt, (halt, last)


def test_every_rule_is_tested_and_unknown_rules_are_refused():
    tested = {"weight_guard", "acc_ready", "halt"} | {r for r, _, _ in _structural_programs()}
    assert tested == set(RULES)
    with pytest.raises(ValueError, match="unknown timing rule 'soon'"):
        schedule([Insn(Op.HALT)], preset("tiny"), loosen=["soon"])
