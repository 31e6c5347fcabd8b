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
        # the bridge and the tile meet through a register each way: on the ECP5-85F the
        # two sit far apart, and the bridge's frame check decided a bank write in the same
        # cycle (the ULX3S's critical path at 60.7 MHz, 14.3 of its 16.5 ns routing). The
        # bridge waits for ``rvalid``, so a read takes two cycles more; a START is seen a
        # cycle later, and the tile's ``busy`` a cycle later by the bridge, which receives no
        # command for a frame's time after its START. Without ``read_registers`` (a slow
        # clock, logic cells short: the iCEBreaker's 128-bit write word and 128-bit read word
        # are 300 of its cells) they meet directly.
        domain = m.d.sync if self.config.read_registers else m.d.comb
        for name, member in bridge.host.signature.members.items():
            src, dst = (bridge.host, tile.host) if member.flow == Out else (tile.host, bridge.host)
            domain += getattr(dst, name).eq(getattr(src, name))
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx),
                     self.busy.eq(tile.host.busy), self.done.eq(tile.host.done)]
        return m
