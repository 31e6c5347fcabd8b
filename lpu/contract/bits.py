"""Packing vectors into the flat buses of the generated Verilog (lane 0 in the low bits)."""

import numpy as np

__all__ = ["pack", "unpack"]


def pack(values, bits):
    """Lanes (lane 0 first) -> the integer of a flat bus, lane 0 in the low bits."""
    mask = (1 << bits) - 1
    word = 0
    for i, v in enumerate(np.asarray(values).tolist()):
        word |= (int(v) & mask) << (i * bits)
    return word


def unpack(word, bits, lanes, signed=True):
    """The integer of a flat bus -> ``lanes`` values of ``bits`` bits (int64)."""
    mask = (1 << bits) - 1
    vals = [(int(word) >> (i * bits)) & mask for i in range(lanes)]
    if signed:
        vals = [v - (1 << bits) if v >> (bits - 1) else v for v in vals]
    return np.array(vals, dtype=np.int64)
