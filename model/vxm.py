"""The vector unit's numerics: bias add and TFLite int8 requantisation, bit-exact, in both
roundings that are in real use (``lpu.contract.isa.ROUNDING``):

* ``single`` (TFLite >= 2.20 reference kernels with ``TFLITE_SINGLE_ROUNDING``, ruy,
  XNNPACK; what LiteRT does today): ``(x * M + 2**(t-1)) >> t`` with ``t = 31 - shift``,
  exact (no int32 wrap of the product);
* ``double`` (gemmlowp, CMSIS-NN): ``RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(
  x << left, M), right)``, the left shift wrapping mod 2**32.

``out = clamp(MultiplyByQuantizedMultiplier(acc + bias, M, shift) + zp, amin, amax)``; the
zero point is added to the exact value and then clamped (TFLite's valid models never leave
int32 there). Functions take integer arrays and return int64 arrays.
"""

import numpy as np

from lpu.contract.isa import ROUNDING
from .arith import INT32_MAX, INT32_MIN, wrap32

__all__ = ["srdhm", "rounding_divide_by_pot", "multiply_by_quantized_multiplier",
           "requantize", "requantize_row", "wrap32", "INT32_MIN", "INT32_MAX", "rounding_code"]


def rounding_code(rounding):
    """``"single"``/``"double"`` or their codes -> the code (``lpu.contract.isa.ROUNDING``)."""
    if isinstance(rounding, str):
        if rounding not in ROUNDING:
            raise ValueError(f"unknown rounding '{rounding}' (choose: {', '.join(ROUNDING)})")
        return ROUNDING[rounding]
    return rounding


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


def _single(x, multiplier, shift):
    t = 31 - np.asarray(shift, dtype=np.int64)
    prod = np.asarray(x, np.int64) * np.asarray(multiplier, np.int64)   # |.| < 2**62
    return (prod + (np.int64(1) << (t - 1))) >> t


def _double(x, multiplier, shift):
    shift = np.asarray(shift, dtype=np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    return rounding_divide_by_pot(srdhm(wrap32(np.asarray(x, np.int64) << left), multiplier),
                                  right)


def multiply_by_quantized_multiplier(x, multiplier, shift, rounding="single"):
    """TFLite MultiplyByQuantizedMultiplier in ``rounding`` (a name or code, or an array of
    codes broadcast against ``x``)."""
    code = np.asarray(rounding_code(rounding) if isinstance(rounding, str) else rounding)
    if code.ndim == 0:
        return (_single if int(code) == ROUNDING["single"] else _double)(x, multiplier, shift)
    return np.where(code == ROUNDING["single"], _single(x, multiplier, shift),
                    _double(x, multiplier, shift))


def requantize(acc, bias, multiplier, shift, zp, amin, amax, rounding="single"):
    """int32 accumulators (..., N) -> int8, per-channel parameters broadcast over rows."""
    x = wrap32(np.asarray(acc, np.int64) + np.asarray(bias, np.int64))
    v = multiply_by_quantized_multiplier(x, multiplier, shift, rounding) + np.int64(zp)
    v = np.where(v < amin, amin, np.where(v > amax, amax, v))
    return v.astype(np.int8)


def requantize_row(acc, row):
    """:func:`requantize` with the parameters of one parameter-memory row (a dict of
    ``lpu.contract.isa.param_fields``; ``rounding`` defaults to single)."""
    return requantize(acc, row["bias"], row["multiplier"], row["shift"], row["zero_point"],
                      row["act_min"], row["act_max"], int(row.get("rounding", ROUNDING["single"])))
