"""int32 arithmetic as the hardware does it: the one definition of wrapping."""

import numpy as np

__all__ = ["wrap32", "INT32_MIN", "INT32_MAX"]

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1


def wrap32(x):
    """Integers (any int dtype, or Python ints) -> int32, wrapping mod 2**32."""
    return np.asarray(x, dtype=np.int64).astype(np.int32)
