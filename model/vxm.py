"""The vector unit's numerics: bias add and TFLite int8 requantisation, bit-exact.

Functions take and return int64 arrays holding int32 values, and mirror TFLite's reference
kernels (gemmlowp's fixed-point helpers) exactly:

``out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zp, amin, amax)``
"""

import numpy as np

from .arith import INT32_MAX, INT32_MIN, wrap32

__all__ = ["srdhm", "rounding_divide_by_pot", "multiply_by_quantized_multiplier",
           "requantize", "wrap32", "INT32_MIN", "INT32_MAX"]


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2**31), ties away from zero,
    with the one overflow case (INT32_MIN * INT32_MIN) saturating to INT32_MAX."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    ab = a * b
    t = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    q = np.where(t >= 0, t >> 31, -((-t) >> 31))        # C division: truncate toward zero
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT: x / 2**exponent rounded to nearest, ties away from zero."""
    x = np.asarray(x, dtype=np.int64)
    e = np.asarray(exponent, dtype=np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, multiplier, shift):
    """TFLite MultiplyByQuantizedMultiplier; the left shift wraps mod 2**32."""
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap32(np.asarray(x, np.int64) << left), multiplier), right)


def requantize(acc, bias, multiplier, shift, zp, amin, amax):
    """int32 accumulators (..., N) -> int8, per-channel parameters broadcast over rows."""
    x = wrap32(np.asarray(acc, np.int64) + np.asarray(bias, np.int64))
    v = multiply_by_quantized_multiplier(x, multiplier, shift) + np.int64(zp)
    v = np.where(v < amin, amin, np.where(v > amax, amax, v))
    return v.astype(np.int8)
