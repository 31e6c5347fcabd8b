"""The GEMM oracle: what a GEMM with bias and TFLite quantisation means, straight from the
definition (int64 arithmetic, then wrapping), independent of the tile's schedule."""

import numpy as np

from .arith import wrap32
from .vxm import requantize

__all__ = ["reference_gemm"]


def reference_gemm(A, B, bias=None, quant=None):
    """The semantics, straight from the definition (int64 arithmetic, then wrapping)."""
    A = np.asarray(A, np.int64)
    B = np.asarray(B, np.int64)
    N = B.shape[1]
    bias = np.zeros(N, np.int64) if bias is None else np.asarray(bias, np.int64)
    if quant is None:
        return wrap32(A @ B + bias)
    acc = wrap32((A - quant.input_zero_point) @ B + bias)
    return requantize(acc, np.zeros(N, np.int64), quant.multiplier, quant.shift,
                      quant.output_zero_point, quant.activation_min, quant.activation_max,
                      quant.rounding)
