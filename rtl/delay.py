from amaranth import *

__all__ = ["delay"]


def delay(m, value, cycles, name="dly", reset_less=False):
    """``value`` delayed by ``cycles`` registers in ``m``'s sync domain (0: ``value`` itself).
    ``reset_less``: data the reset need not clear (a valid bit beside it says when it counts),
    which keeps the registers off the reset net."""
    prev = value
    for i in range(cycles):
        reg = Signal.like(value, name=f"{name}_{i}", reset_less=reset_less) \
            if isinstance(value, Signal) else \
            Signal(Value.cast(value).shape(), name=f"{name}_{i}", reset_less=reset_less)
        m.d.sync += reg.eq(prev)
        prev = reg
    return prev
