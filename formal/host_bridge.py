from amaranth import *
from amaranth.lib.wiring import In

from lpu.contract.protocol import SYNC_REP, SYNC_REQ, Cmd, Status
from rtl.bridge_core import BridgeCore

from .harness import Harness

__all__ = ["BridgeHarness", "BridgeResyncHarness"]

# command -> (payload length, refused while the tile is busy); as docs/protocol.md says
COMMANDS = [(Cmd.WRITE, None, True), (Cmd.READ, 4, True), (Cmd.START, 0, True),
            (Cmd.STATUS, 0, False), (Cmd.INFO, 0, False)]


class _Observed(BridgeCore):
    """The bridge with its receive CRC visible to the harness."""

    def __init__(self, config, timeout):
        super().__init__(config, timeout)
        self.rx_crc = Signal(16)

    def elaborate(self, platform):
        m = super().elaborate(platform)
        m.d.comb += self.rx_crc.eq(m.submodules.rx_crc.crc)
        return m


class BridgeHarness(Harness):
    """The serial bridge's protocol engine (``rtl/bridge_core.py``) at byte level.

    The solver sends any bytes at all (garbage: partial frames, lengths too long for any
    command, stray sync bytes, on any cycles), then the line is quiet for ``QUIET`` cycles
    (the host's resynchronisation gap: ``timeout`` plus the longest reply), then one
    well-formed frame of any command with any payload, its bytes on any cycles as long as no
    gap reaches the timeout, with the correct CRC or (``corrupt``) a CRC with any nonzero
    error pattern. The tile may be busy or idle. Then:

    * ``answered``: the frame's reply starts within ``BOUND`` cycles of its last byte, and no
      reply byte goes out while the frame arrives (exactly one reply, to this frame);
    * ``status``: the reply says ``BAD_CRC`` for a corrupted frame, ``BUSY`` for WRITE, READ
      and START while the tile is busy, ``OK`` otherwise;
    * ``crc_guard``: a corrupted frame never writes, reads or starts anything;
    * ``write_exact``: a good WRITE writes exactly the region, bank, address, part and word
      it carried.

    This harness sends the frame from power-on (every command's frame, WRITE included, fits
    in its bound); :class:`BridgeResyncHarness` sends garbage and the quiet gap first, and
    its bound covers the short frames after them. Bounded model checking, with a short
    ``timeout`` (the design is one description for every timeout).
    """

    TIMEOUT = 3
    BOUND = 4
    GARBAGE = False         # True: any bytes and the quiet gap come first

    def __init__(self, config):
        super().__init__(config, {
            "g_valid": In(1), "g_byte": In(8), "go": In(1), "send": In(1), "cmd_sel": In(3),
            "pay": In(8), "corrupt": In(1), "flip": In(16), "busy": In(1), "o_ready": In(1)})

    def build(self, m):
        cfg = self.config
        HB = cfg.host_data_bits // 8
        MAXP = 5 + HB
        T = self.TIMEOUT
        QUIET = T + 1 + (4 + HB + 2) + 2
        m.submodules.dut = dut = _Observed(cfg, T)
        host = dut.host

        # the tile behind the host port: reads answer on the next cycle
        m.d.sync += host.rvalid.eq(host.re)
        m.d.comb += [host.busy.eq(self.busy), host.done.eq(0), host.rdata.eq(0)]

        phase = Signal(range(4), init=0 if self.GARBAGE else 2)  # garbage, quiet, frame, after
        quiet = Signal(range(QUIET + 1))
        with m.If((phase == 0) & self.go):
            m.d.sync += phase.eq(1)
        with m.If(phase == 1):
            m.d.sync += quiet.eq(quiet + 1)
            with m.If(quiet == QUIET - 1):
                m.d.sync += phase.eq(2)
        in_frame = phase >= 2
        self.constant(m, self.cmd_sel)
        self.constant(m, self.corrupt)
        self.constant(m, self.flip)
        self.assume(m, self.cmd_sel < len(COMMANDS))
        self.assume(m, self.flip != 0)
        busy_kept = self._busy_kept(m, in_frame)

        # the frame: sync, command, length (2), payload, CRC (2)
        cmd = Signal(8)
        length = Signal(16)
        refusable = Signal()
        for i, (code, n, busy_only) in enumerate(COMMANDS):
            with m.If(self.cmd_sel == i):
                m.d.comb += [cmd.eq(code), length.eq(MAXP if n is None else n),
                             refusable.eq(busy_only)]
        pos = Signal(16)
        last = pos == length + 5
        # the CRC sent: the bridge's own CRC of the bytes before it (amaranth.lib.crc, the
        # same algorithm as the host's lpu.contract.protocol.crc16, which the bridge
        # testbench checks against it), or that with a nonzero error pattern
        sent_crc = dut.rx_crc ^ Mux(self.corrupt, self.flip, 0)
        byte = Signal(8)
        with m.If(pos == 0):
            m.d.comb += byte.eq(SYNC_REQ)
        with m.Elif(pos == 1):
            m.d.comb += byte.eq(cmd)
        with m.Elif(pos == 2):
            m.d.comb += byte.eq(length[:8])
        with m.Elif(pos == 3):
            m.d.comb += byte.eq(length[8:])
        with m.Elif(pos < length + 4):
            m.d.comb += byte.eq(self.pay)
        with m.Elif(pos == length + 4):
            m.d.comb += byte.eq(sent_crc[:8])
        with m.Else():
            m.d.comb += byte.eq(sent_crc[8:])
        sending = (phase == 2) & self.send
        payload = Signal(MAXP * 8)                  # what the frame carried
        with m.If(sending):
            m.d.sync += pos.eq(pos + 1)
            for i in range(MAXP):
                with m.If(pos == 4 + i):
                    m.d.sync += payload[8 * i:8 * i + 8].eq(self.pay)
            with m.If(last):
                m.d.sync += phase.eq(3)
        gap = Signal(range(T + 1))
        with m.If(sending | (phase != 2)):
            m.d.sync += gap.eq(0)
        with m.Elif(pos != 0):
            m.d.sync += gap.eq(gap + 1)
        self.assume(m, (phase != 2) | sending | (gap < T - 1))

        m.d.comb += [dut.i.valid.eq(Mux(phase == 0, self.g_valid, sending)),
                     dut.i.payload.eq(Mux(phase == 0, self.g_byte, byte)),
                     dut.o.ready.eq(Mux(phase == 0, self.o_ready, 1))]

        # the reply
        out = dut.o.valid & dut.o.ready
        wait = Signal(range(self.BOUND + 2))
        replied = Signal(8)                          # reply bytes seen after the frame
        with m.If(phase == 3):
            with m.If(out):
                m.d.sync += replied.eq(Mux(replied == 255, 255, replied + 1))
            with m.If((replied == 0) & ~out & (wait <= self.BOUND)):
                m.d.sync += wait.eq(wait + 1)
        self.check(m, ~out, "one_reply", when=phase == 2)
        self.check(m, (replied != 0) | out | (wait < self.BOUND), "answered", when=phase == 3)
        self.check(m, dut.o.payload == SYNC_REP, "answered", when=(phase == 3) & out & (replied == 0))
        expect = Mux(self.corrupt, Status.BAD_CRC,
                     Mux(refusable & busy_kept, Status.BUSY, Status.OK))
        self.check(m, dut.o.payload == expect, "status", when=(phase == 3) & out & (replied == 1))
        self.check(m, ~(host.we | host.re | host.start), "crc_guard", when=in_frame & self.corrupt)
        # the host port's fields are as wide as the tile needs: the bytes' low bits
        field = lambda i, port: payload[8 * i:8 * i + len(Value.cast(port))]
        self.check(m, (host.region.as_value() == field(0, host.region)) &
                   (host.bank == field(1, host.bank)) &
                   (host.addr == payload[16:16 + len(host.addr)]) &
                   (host.part == field(4, host.part)) &
                   (host.wdata == payload[40:40 + 8 * HB]), "write_exact", when=in_frame & host.we)
        status_out = (phase == 3) & out & (replied == 1)
        if self.GARBAGE:
            self.cover(m, status_out & ~self.corrupt & (dut.o.payload == Status.OK), "ok_answered")
        else:
            self.cover(m, status_out & (cmd == Cmd.WRITE) & ~self.corrupt &
                       (dut.o.payload == Status.OK), "write_answered")
            self.cover(m, status_out & (cmd == Cmd.WRITE) & self.corrupt, "bad_crc_answered")

    def _busy_kept(self, m, in_frame):
        """The tile's busy as it was when the frame began (it may change during garbage)."""
        kept = Signal(name="busy_at_frame")
        first = Signal(init=1, name="frame_first")
        with m.If(in_frame & first):
            m.d.sync += [kept.eq(self.busy), first.eq(0)]
        self.assume(m, ~in_frame | first | (self.busy == kept))
        return Mux(first, self.busy, kept)


class BridgeResyncHarness(BridgeHarness):
    """:class:`BridgeHarness` after any bytes and the quiet gap: the bridge answers the
    next frame as if it had just been switched on."""
    GARBAGE = True
