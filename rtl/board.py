from amaranth import *
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .host_bridge import HostBridge
from .tile import LpuTile

__all__ = ["LpuBoard", "SIM_DIVISOR"]

# clock cycles per UART bit in simulation (the virtual board); boards use clock / baud rate
SIM_DIVISOR = 4


class LpuBoard(wiring.Component):
    """What goes on an FPGA: the tile behind the serial host bridge. Ports: ``rx``, ``tx``
    (the UART, 8N1, ``divisor`` cycles per bit) and ``busy``/``done`` for LEDs."""

    rx: In(1, init=1)
    tx: Out(1, init=1)
    busy: Out(1)
    done: Out(1)

    def __init__(self, config, divisor=SIM_DIVISOR, timeout=None):
        self.config = config
        self.divisor = divisor
        # a frame may pause for up to 64 byte times before it is answered as truncated
        self.timeout = timeout or 64 * 10 * divisor
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.tile = tile = LpuTile(self.config)
        m.submodules.bridge = bridge = HostBridge(self.config, self.divisor, self.timeout)
        wiring.connect(m, bridge.host, tile.host)
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx),
                     self.busy.eq(tile.host.busy), self.done.eq(tile.host.done)]
        return m
