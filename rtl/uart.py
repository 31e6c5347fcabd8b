from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["UartRx", "UartTx"]


class UartRx(wiring.Component):
    """8N1 receiver. ``divisor`` clock cycles per bit. ``o`` is a byte stream that cannot
    wait (``always_ready``: a line does not pause): ``o.valid`` pulses for one cycle with
    ``o.payload`` when a byte's stop bit has been sampled high; a low stop bit (framing
    error) drops the byte."""

    rx: In(1, init=1)
    o: Out(stream.Signature(8, always_ready=True))

    def __init__(self, divisor):
        assert divisor >= 4
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        rx = Signal(init=1)
        rx0 = Signal(init=1)
        m.d.sync += [rx0.eq(self.rx), rx.eq(rx0)]           # synchroniser
        timer = Signal(range(2 * d))
        bit = Signal(range(10))
        shift = Signal(8)
        m.d.sync += self.o.valid.eq(0)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += [timer.eq(d // 2), bit.eq(0)]
                    m.next = "START"
            with m.State("START"):                            # middle of the start bit
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(rx):
                    m.next = "IDLE"                           # glitch, not a start bit
                with m.Else():
                    m.d.sync += timer.eq(d - 1)
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], rx)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(rx):
                        m.d.sync += [self.o.payload.eq(shift), self.o.valid.eq(1)]
                    m.next = "IDLE"
        return m


class UartTx(wiring.Component):
    """8N1 transmitter of the byte stream ``i``: a byte is taken when ``valid`` and
    ``ready`` are both high."""

    tx: Out(1, init=1)
    i: In(stream.Signature(8))

    def __init__(self, divisor):
        self.divisor = divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        d = self.divisor
        timer = Signal(range(d))
        shift = Signal(10, init=0x3FF)
        bits = Signal(range(11))
        m.d.comb += [self.i.ready.eq(bits == 0), self.tx.eq(shift[0])]
        with m.If(bits == 0):
            with m.If(self.i.valid):
                m.d.sync += [shift.eq(Cat(0, self.i.payload, 1)), bits.eq(10), timer.eq(d - 1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Else():
            m.d.sync += [shift.eq(Cat(shift[1:], 1)), bits.eq(bits - 1), timer.eq(d - 1)]
        return m
