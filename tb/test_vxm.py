"""Vector unit against ``model.vxm.requantize``: every vector, on the cycle it is due.

Stimulus: seeded random accumulators and per-channel parameters, plus the corners of the
TFLite arithmetic (INT32 extremes, shifts -31 and 30, multipliers 0, 2**31-1 and negative,
SRDHM's saturating INT32_MIN * INT32_MIN, ties of the rounding, clamps that cut everything), with parameters changing on every vector.
"""

import cocotb
import numpy as np
from cocotb.triggers import ReadOnly, RisingEdge

from lpu.contract.isa import ROUNDING, pack_params, param_words
from model.arith import INT32_MAX, INT32_MIN, wrap32
from model.vxm import requantize_row
from tb.coverage import sample_requant
from tb.common import TB, WATCHDOG, pack, unpack, rng_for, record_stats


def random_params(rng, L, corners=False):
    if corners:
        # (negative multipliers too: TFLite's converter never writes one, but the VXM's
        # contract is SRDHM's, for every int32, with its one saturating case)
        mult = rng.choice(np.array([0, 1, 1 << 30, (1 << 31) - 1, 1518500250, -1, INT32_MIN,
                                    INT32_MIN + 8], np.int64), L)
        shift = rng.choice(np.array([-31, -30, -1, 0, 1, 29, 30], np.int64), L)
        bias = rng.choice(np.array([0, INT32_MIN, INT32_MAX, -1, 1], np.int64), L)
    else:
        mult = rng.integers(INT32_MIN if rng.random() < 0.2 else 0, 1 << 31, L)
        shift = rng.integers(-31, 31, L)
        bias = rng.integers(INT32_MIN, INT32_MAX + 1, L)
    amin, amax = sorted(int(v) for v in rng.integers(-128, 128, 2))
    if rng.random() < 0.5:
        amin, amax = -128, 127
    return dict(bias=bias, multiplier=mult, shift=shift, zero_point=int(rng.integers(-128, 128)),
                act_min=amin, act_max=amax, rounding=int(rng.choice(list(ROUNDING.values()))))


def random_acc(rng, L, corners=False):
    if corners:
        return rng.choice(np.array([INT32_MIN, INT32_MAX, 0, -1, 1, 1 << 30, -(1 << 30),
                                    3 << 20, -(3 << 20)], np.int64), L)
    scale = int(rng.choice([1 << 8, 1 << 16, 1 << 24, 1 << 31]))
    return np.clip(rng.integers(-scale, scale, L), INT32_MIN, INT32_MAX)


def vectors_for(config, n, serial):
    """``n`` vectors, or ``serial`` through a bit-serial VXM (``SERIAL_LANE_CYCLES`` cycles a
    lane: a vector takes as long as 128 of the pipelined VXM's)."""
    return serial if config.vxm_serial else n


def strobes(dut, config):
    """The inputs that are low while nothing happens."""
    return [dut.i_valid] + ([dut.param_we] if config.vxm_serial else [])


async def stream(dut, tb, vectors):
    """``vectors``: list of (acc, params) or None (idle cycle). Each vector is presented
    for ``vxm_passes`` cycles (pass 0, 1, ...), with its parameters (a bit-serial VXM's are in
    its own memory: written into row ``i % param_rows`` in the idle cycles before vector
    ``i``, a part a cycle). Checks every output on every cycle."""
    cfg = tb.config
    L, P = cfg.lanes, cfg.vxm_passes
    lat = cfg.vxm_latency
    cycles = []                      # per cycle: (vector, pass), a parameter write, or None
    for i, v in enumerate(vectors):
        if v is not None and cfg.vxm_serial:
            words = param_words(L, cfg.param_part_bits, pack_params(L, **v[1]))
            cycles.extend(("write", i % cfg.param_rows, part, w) for part, w in enumerate(words))
        cycles.extend([None] if v is None else [((*v, i), k) for k in range(P)])
    expected = {}
    total = len(cycles) + lat + 1
    checked = 0
    for c in range(total):
        v = cycles[c] if c < len(cycles) else None
        if cfg.vxm_serial:
            write = v is not None and v[0] == "write"
            dut.param_we.value = int(write)
            if write:
                _, dut.param_row.value, dut.param_part.value, dut.param_wdata.value = v
                v = None
        if v is not None:
            (acc, params, i), k = v
            dut.i_valid.value = 1
            dut.i_pass.value = k
            tag = (i * 37) & 0xFF                   # the vector's number: it must come out
            dut.i_tag.value = tag                   # beside the vector's result
            dut.i_data.value = pack(acc, 32)
            if cfg.vxm_serial:
                dut.i_prow.value = i % cfg.param_rows
            else:
                dut.i_params.value = pack_params(L, **params)
            p = params
            if k == 0:
                expected[c + lat] = (tag, wrap32(acc + p["bias"]), requantize_row(acc, p))
                sample_requant(cfg, np.asarray(acc, np.int64) + p["bias"], p)
        else:
            dut.i_valid.value = 0
        await ReadOnly()
        valid = int(dut.o_valid.value)
        assert valid == (c in expected), f"cycle {c}: o_valid={valid}, model disagrees"
        if valid:
            tag, x, q8 = expected[c]
            assert int(dut.o_tag.value) == tag, f"cycle {c}: tag {int(dut.o_tag.value)} != {tag}"
            got32 = unpack(dut.o_i32.value.to_unsigned(), 32, L)
            got8 = unpack(dut.o_i8.value.to_unsigned(), 8, L)
            assert np.array_equal(got32, x), f"cycle {c}: int32 {got32.tolist()} != model {x.tolist()}"
            assert np.array_equal(got8, q8), (
                f"cycle {c}: int8 {got8.tolist()} != model {q8.tolist()} "
                f"for acc+bias {x.tolist()}")
            checked += 1
        await RisingEdge(dut.clk)
    tb.cycle += total
    return checked


@cocotb.test(**WATCHDOG)
async def test_requant_random(dut):
    """Back-to-back random vectors with fresh random parameters on every one."""
    tb = TB(dut)
    await tb.reset(strobes(dut, tb.config))
    rng = rng_for("test_requant_random")
    L = tb.config.lanes
    vecs = [(random_acc(rng, L), random_params(rng, L)) for _ in range(vectors_for(tb.config, 2000, 125))]
    n = await stream(dut, tb, vecs)
    assert n == len(vecs)
    record_stats("test_requant_random", tb.cycle, vectors=n)


@cocotb.test(**WATCHDOG)
async def test_requant_corners(dut):
    """INT32 extremes, shift -31/30, multiplier 0/2**31-1, rounding ties, narrow clamps,
    with idle cycles between bursts."""
    tb = TB(dut)
    await tb.reset(strobes(dut, tb.config))
    rng = rng_for("test_requant_corners")
    L = tb.config.lanes
    vecs = []
    for i in range(vectors_for(tb.config, 1500, 300)):
        if rng.random() < 0.1:
            vecs.append(None)
            continue
        acc = random_acc(rng, L, corners=True)
        p = random_params(rng, L, corners=True)
        if i % 7 == 0:      # exact ties of the final rounding: x * M / 2**31 = k + 1/2
            p["multiplier"][:] = 1 << 30
            p["shift"][:] = -1
            p["bias"][:] = 0
            acc = rng.integers(-1000, 1000, L) * 2 + 1
        elif i % 11 == 0:   # SRDHM's saturating case, INT32_MIN * INT32_MIN, and next to it
            lane = int(rng.integers(0, L))
            p["rounding"] = ROUNDING["double"]
            p["multiplier"][lane] = INT32_MIN
            p["shift"][lane] = int(rng.integers(-31, 1))
            p["bias"][lane] = int(rng.choice([0, 8, -8]))
            acc[lane] = INT32_MIN
        vecs.append((acc, p))
    n = await stream(dut, tb, vecs)
    assert n == sum(v is not None for v in vecs)
    record_stats("test_requant_corners", tb.cycle, vectors=n)
