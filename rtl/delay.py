from amaranth import *

__all__ = ["delay", "taps"]


def delay(m, value, cycles, name="dly", reset_less=False):
    """``value`` delayed by ``cycles`` registers in ``m``'s sync domain (0: ``value`` itself);
    ``reset_less``: registers without a reset (a datapath's, which no reset net reaches)."""
    prev = value
    for i in range(cycles):
        # a view (a layout's value) keeps its layout
        shape = value.shape() if hasattr(value, "shape") else Value.cast(value).shape()
        reg = Signal.like(value, name=f"{name}_{i}", reset_less=reset_less) \
            if isinstance(value, Signal) else Signal(shape, name=f"{name}_{i}",
                                                     reset_less=reset_less)
        m.d.sync += reg.eq(prev)
        prev = reg
    return prev


def taps(m, value, cycles, name="tap"):
    """``[value, value delayed 1, ..., value delayed cycles]``: one register chain's taps."""
    out = [value]
    for i in range(cycles):
        out.append(delay(m, out[-1], 1, f"{name}{i + 1}"))
    return out
