"""model.vxm against a scalar, line-by-line transcription of TFLite's reference C++, written
independently with Python integers, in both roundings: gemmlowp's fixed-point helpers
(double) and ``common.cc``'s ``TFLITE_SINGLE_ROUNDING`` branch (single). (The byte-exact
oracle for whole networks is LiteRT itself: ``tests/test_tflite.py``.)"""

import numpy as np
import pytest

from model.vxm import (INT32_MAX, INT32_MIN, multiply_by_quantized_multiplier, requantize,
                       rounding_divide_by_pot, srdhm)


def c_div(a, b):                      # C/C++ integer division truncates toward zero
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def to_int32(x):
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x & 0x80000000 else x


def SaturatingRoundingDoublingHighMul(a, b):
    overflow = a == b and a == INT32_MIN
    a_64, b_64 = a, b
    ab_64 = a_64 * b_64
    nudge = (1 << 30) if ab_64 >= 0 else (1 - (1 << 30))
    ab_x2_high32 = c_div(ab_64 + nudge, 1 << 31)
    return INT32_MAX if overflow else ab_x2_high32


def RoundingDivideByPOT(x, exponent):
    assert 0 <= exponent <= 31
    mask = (1 << exponent) - 1
    zero = 0
    one = 1
    remainder = x & mask
    threshold = (mask >> 1) + (one if x < zero else zero)
    return (x >> exponent) + (one if remainder > threshold else zero)


def MultiplyByQuantizedMultiplier(x, quantized_multiplier, shift):
    left_shift = shift if shift > 0 else 0
    right_shift = 0 if shift > 0 else -shift
    return RoundingDivideByPOT(
        SaturatingRoundingDoublingHighMul(to_int32(x * (1 << left_shift)), quantized_multiplier),
        right_shift)


def MultiplyByQuantizedMultiplierSingle(x, quantized_multiplier, shift):
    assert quantized_multiplier >= 0 and -31 <= shift <= 30
    total_shift = 31 - shift
    round_ = 1 << (total_shift - 1)
    result = x * quantized_multiplier + round_
    return result >> total_shift                 # int64 arithmetic shift, never overflows


SCALAR = {"double": MultiplyByQuantizedMultiplier, "single": MultiplyByQuantizedMultiplierSingle}


def scalar_requant(acc, bias, mult, shift, zp, lo, hi, rounding="double"):
    v = SCALAR[rounding](to_int32(acc + bias), mult, shift) + zp
    return min(max(v, lo), hi)


CORNER_X = [INT32_MIN, INT32_MIN + 1, -(1 << 30), -12345, -3, -2, -1, 0, 1, 2, 3, 12345,
            1 << 30, INT32_MAX - 1, INT32_MAX]
CORNER_M = [0, 1, 2, 1 << 30, (1 << 30) + 1, 1518500250, INT32_MAX]
CORNER_S = [-31, -30, -17, -2, -1, 0, 1, 2, 15, 29, 30]


def test_srdhm_corners_and_random():
    rng = np.random.default_rng(7)
    a = np.array(CORNER_X + list(rng.integers(INT32_MIN, INT32_MAX, 3000)), np.int64)
    b = np.array([INT32_MIN] + CORNER_M + list(rng.integers(INT32_MIN, INT32_MAX, 3000)), np.int64)
    aa, bb = np.meshgrid(a[:60], b[:60])
    pairs = list(zip(aa.ravel(), bb.ravel())) + list(zip(a, b[:len(a)]))
    x = np.array([p[0] for p in pairs])
    y = np.array([p[1] for p in pairs])
    got = srdhm(x, y)
    want = [SaturatingRoundingDoublingHighMul(int(p), int(q)) for p, q in zip(x, y)]
    np.testing.assert_array_equal(got, want)
    assert srdhm(INT32_MIN, INT32_MIN) == INT32_MAX


def test_rounding_divide_by_pot_ties():
    xs = np.arange(-70, 71)
    for e in (0, 1, 2, 3, 5):
        np.testing.assert_array_equal(rounding_divide_by_pot(xs, e),
                                      [RoundingDivideByPOT(int(x), e) for x in xs])
    for e in (30, 31):
        np.testing.assert_array_equal(rounding_divide_by_pot(np.array(CORNER_X), e),
                                      [RoundingDivideByPOT(int(x), e) for x in CORNER_X])


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_multiply_by_quantized_multiplier_grid(rounding):
    x, m, s = np.meshgrid(CORNER_X, CORNER_M, CORNER_S)
    got = multiply_by_quantized_multiplier(x.ravel(), m.ravel(), s.ravel(), rounding)
    want = [SCALAR[rounding](int(a), int(b), int(c))
            for a, b, c in zip(x.ravel(), m.ravel(), s.ravel())]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("rounding", ["single", "double"])
def test_every_shift_and_the_ties(rounding):
    """Every shift in [-31, 30]; values exactly halfway between two results (ties), either
    sign, where the two roundings differ."""
    xs, ms, ss = [], [], []
    for s in range(-31, 31):
        t = 31 - s
        for m in (1 << 30, (1 << 31) - 1, 3, 1):
            for k in (-3, -1, 0, 1, 3):              # x*m = (k + 1/2) * 2**t: a tie
                num = (2 * k + 1) << (t - 1)
                if num % m == 0 and INT32_MIN <= num // m <= INT32_MAX:
                    xs.append(num // m), ms.append(m), ss.append(s)
            xs += [INT32_MIN, -1, 0, 1, INT32_MAX, 12345, -12345]
            ms += [m] * 7
            ss += [s] * 7
    got = multiply_by_quantized_multiplier(np.array(xs), np.array(ms), np.array(ss), rounding)
    want = [SCALAR[rounding](int(a), int(b), int(c)) for a, b, c in zip(xs, ms, ss)]
    np.testing.assert_array_equal(got, want)
    assert len(set(ss)) == 62


def test_single_rounds_ties_up_where_double_rounds_away():
    """x * M / 2**t = -2.5: single rounding gives -2 (floor of x + 1/2), gemmlowp -3."""
    x, m, s = -10, 1 << 30, -1         # -10 * 2**30 / 2**32 = -2.5
    assert SCALAR["single"](x, m, s) == -2 and SCALAR["double"](x, m, s) == -3
    assert multiply_by_quantized_multiplier(x, m, s, "single") == -2
    assert multiply_by_quantized_multiplier(x, m, s, "double") == -3


@pytest.mark.parametrize("rounding", ["single", "double"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_requantize_random(seed, rounding):
    rng = np.random.default_rng(seed)
    n = 4000
    acc = rng.integers(INT32_MIN, INT32_MAX + 1, n)
    bias = rng.integers(INT32_MIN, INT32_MAX + 1, n)
    mult = rng.integers(0, 1 << 31, n)
    shift = rng.integers(-31, 31, n)
    zp = int(rng.integers(-128, 128))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    got = requantize(acc, bias, mult, shift, zp, lo, hi, rounding)
    want = [scalar_requant(int(a), int(b), int(m), int(s), zp, lo, hi, rounding)
            for a, b, m, s in zip(acc, bias, mult, shift)]
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
