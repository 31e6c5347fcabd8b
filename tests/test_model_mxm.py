"""model.mxm against np.matmul, and against a register-level simulation of the systolic
array written here independently (for weight rewrites under moving activations)."""

import numpy as np
import pytest

from lpu.contract.config import LpuConfig
from model.arith import wrap32
from model.mxm import Activations, MatmulModel, apply_updates

CFG = LpuConfig(lanes=4, banks=4, depth=64, acc_depth=16)


def register_sim(L, writes, acts, cycles):
    """Cycle-by-cycle PE grid behind the two ports' entry registers: returns {exit cycle:
    result vector}. With ``read_registers`` (``pipe``), each PE's operands and its product
    pass one more register each."""
    pipe = CFG.read_registers
    w = np.zeros((2, L, L), np.int64)
    a_reg = np.zeros((L, L), np.int64)
    s_reg = np.zeros((L, L), np.int64)
    p_reg = np.zeros((L, L), np.int64)
    m_reg = np.zeros((L, L), np.int64)          # each PE's product, registered
    oa_reg = np.zeros((L, L), np.int64)         # each PE's operands, registered: activation
    ow_reg = np.zeros((L, L), np.int64)         # and the weight of the buffer it selected
    pre = [(np.zeros((L, L), np.int64),) * 2 for _ in range(pipe)]   # in front of oa/ow
    post = [np.zeros((L, L), np.int64) for _ in range(pipe)]         # after m
    skew_a = [[0] * k for k in range(L)]
    skew_s = [[0] * k for k in range(L)]
    wmap = {c: (b, k, row) for c, b, k, row in writes}
    amap = {t: (b, a) for t, b, a in acts}
    out_hist = []
    for c in range(cycles):
        # both ports pass an entry register: the grid sees this cycle what came the last
        b_in, a_in = amap.get(c - 1, (0, np.zeros(L, np.int64)))
        # inputs of row k at column 0 this cycle: a[k] delayed by k
        row_a = [a_in[0]] + [skew_a[k][-1] for k in range(1, L)]
        row_s = [b_in] + [skew_s[k][-1] for k in range(1, L)]
        new_p = np.zeros_like(p_reg)
        new_m = np.zeros_like(m_reg)
        sel_a, sel_w = np.zeros_like(oa_reg), np.zeros_like(ow_reg)
        new_a = np.zeros_like(a_reg)
        new_s = np.zeros_like(s_reg)
        for k in range(L):
            for n in range(L):
                ai = row_a[k] if n == 0 else a_reg[k, n - 1]
                si = row_s[k] if n == 0 else s_reg[k, n - 1]
                pi = 0 if k == 0 else p_reg[k - 1, n]
                sel_a[k, n], sel_w[k, n] = ai, w[si, k, n]
                new_m[k, n] = oa_reg[k, n] * ow_reg[k, n]
                new_p[k, n] = pi + (post[-1] if pipe else m_reg)[k, n]
                new_a[k, n] = ai
                new_s[k, n] = si
        for k in range(1, L):
            skew_a[k] = [a_in[k]] + skew_a[k][:-1]
            skew_s[k] = [b_in] + skew_s[k][:-1]
        if c - 1 in wmap:
            b, k, row = wmap[c - 1]
            w[b, k] = row
        new_oa, new_ow = pre[-1] if pipe else (sel_a, sel_w)
        pre = [(sel_a, sel_w)] + pre[:-1]
        post = [m_reg] + post[:-1]
        p_reg, m_reg, a_reg, s_reg = new_p, new_m, new_a, new_s
        oa_reg, ow_reg = new_oa, new_ow
        out_hist.append(p_reg[L - 1].copy())     # column n's sum, visible from c + 1
    res = {}
    for t in amap:
        # column n leaves PE(L-1, n) at t + 2 + 2 pipe + L + n (the entry register, then its
        # operands' and its product's registers; visible one cycle later), de-skewed
        d = 2 + 2 * pipe
        res[t + 2 * L + d] = np.array([out_hist[t + d + L + n][n] for n in range(L)])
    return res


def test_matches_register_sim_with_rewrites_in_flight():
    L = CFG.lanes
    rng = np.random.default_rng(3)
    writes, acts = [], []
    c = 0
    for _ in range(30):
        writes.append((c, int(rng.integers(0, 2)), int(rng.integers(0, L)),
                       rng.integers(-128, 128, L)))
        c += int(rng.integers(1, 3))
    for t in range(0, 60):
        if rng.random() < 0.7:
            acts.append((t, int(rng.integers(0, 2)), rng.integers(-128, 128, L)))
    want = register_sim(L, writes, acts, 80)
    model = MatmulModel(CFG)
    for cw, b, k, row in writes:
        model.write_weights(cw, b, k, row)
    act = Activations([t for t, _, _ in acts], [b for _, b, _ in acts],
                      np.array([a for _, _, a in acts]), np.zeros(len(acts), int),
                      np.zeros(len(acts), bool))
    got = model.results(act)
    for i, (t, _, _) in enumerate(acts):
        np.testing.assert_array_equal(got[i], want[t + CFG.mxm_latency], err_msg=f"activation at {t}")


def test_stationary_weights_equal_matmul():
    L = CFG.lanes
    rng = np.random.default_rng(4)
    W = rng.integers(-128, 128, (L, L))
    X = rng.integers(-128, 128, (50, L))
    model = MatmulModel(CFG)
    for k in range(L):
        model.write_weights(k, 1, k, W[k])
    act = Activations(np.arange(50) + L + 1, np.ones(50, int), X, np.zeros(50, int), np.zeros(50, bool))
    np.testing.assert_array_equal(model.results(act), X @ W)


def test_accumulate_wraps_and_orders():
    acc = np.zeros((4, 2), np.int32)
    addr = np.array([0, 0, 1, 0])
    accum = np.array([False, True, False, True])
    r = np.array([[2**31 - 1, 5], [1, -7], [3, 3], [10, 0]], np.int64)
    apply_updates(acc, addr, accum, r)
    np.testing.assert_array_equal(acc[0], wrap32(np.array([2**31 - 1 + 1 + 10, 5 - 7])))
    np.testing.assert_array_equal(acc[1], [3, 3])


def test_weight_writes_must_be_ordered():
    model = MatmulModel(CFG)
    model.write_weights(5, 0, 0, np.zeros(4))
    with pytest.raises(ValueError, match="cycle order"):
        model.write_weights(5, 0, 0, np.zeros(4))
