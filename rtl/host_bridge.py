from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .bridge_core import BridgeCore
from .interfaces import host_port_signature
from .uart import UartRx, UartTx

__all__ = ["HostBridge"]


class HostBridge(wiring.Component):
    """UART <-> the tile's host port: an 8N1 receiver and transmitter (``divisor`` cycles per
    bit) around :class:`BridgeCore`, which speaks the framed protocol on bytes."""

    def __init__(self, config, divisor, timeout):
        self.config = config
        self.divisor = divisor
        self.timeout = timeout
        super().__init__({
            "rx": In(1, init=1), "tx": Out(1, init=1),
            "host": Out(host_port_signature(config)),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.urx = urx = UartRx(self.divisor)
        m.submodules.utx = utx = UartTx(self.divisor)
        m.submodules.core = core = BridgeCore(self.config, self.timeout)
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx)]
        wiring.connect(m, urx.o, core.i)
        wiring.connect(m, core.o, utx.i)
        wiring.connect(m, core.host, wiring.flipped(self.host))
        return m
