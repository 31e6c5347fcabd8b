from amaranth import *
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from lpu.contract.protocol import CRC, SYNC_REP, SYNC_REQ, Cmd, Status

from .interfaces import host_port_signature

__all__ = ["BridgeCore"]


class BridgeCore(wiring.Component):
    """The framed, CRC-protected protocol of ``lpu/contract/protocol.py`` (docs/protocol.md) on
    byte streams: ``i`` (received bytes; a line cannot wait, so ``always_ready``) and ``o``
    (reply bytes, sent when ``o.ready``), executed on the tile's host port.

    Every request gets exactly one reply. A frame is executed only after its CRC checks, so a
    corrupted frame changes nothing. A frame that stops arriving for ``timeout`` cycles is
    answered ``TIMEOUT``; a length too long for any command is answered ``BAD_LENGTH`` once the
    line has been quiet for ``timeout`` cycles; bytes outside a frame are ignored. Writes,
    reads and START while the tile is busy are answered ``BUSY``. ``formal/host_bridge.py``
    proves the bounded answer and the CRC guard.
    """

    def __init__(self, config, timeout):
        self.config = config
        self.timeout = timeout
        super().__init__({
            "i": In(stream.Signature(8, always_ready=True)),
            "o": Out(stream.Signature(8)),
            "host": Out(host_port_signature(config)),
        })

    def elaborate(self, platform):
        cfg = self.config
        HB = cfg.host_data_bits // 8
        MAXP = 5 + HB
        m = Module()
        host = self.host

        cmd = Signal(8)
        length = Signal(16)
        idx = Signal(range(MAXP + 1))   # payload bytes so far (a payload is at most MAXP)
        # the payload byte's position, one-hot: each byte's clock enable is one flip-flop and
        # the arrival (a 16-bit compare of ``idx`` with each position chose them: the ULX3S
        # 8-lane tile's bridge paths at 100 MHz, 57 endpoints to 11.1 ns)
        at = Signal(MAXP)
        buf = Signal(MAXP * 8)
        rcrc = Signal(8)                # the frame's CRC, its first byte
        crc_ok = Signal()               # and whether all of it matched
        quiet = Signal(range(self.timeout + 1))     # cycles since the last byte
        status = Signal(8)
        # INFO's reply: the tile's shape
        info = [cfg.lanes, cfg.banks, cfg.addr_bits, cfg.acc_addr_bits, HB, cfg.param_parts]
        # a reply's payload length (16 bits on the wire) is as wide as the longest reply
        # needs, not 16 bits
        longest = max(HB, len(info), 2)
        rlen = Signal(range(longest + 1))
        rbuf = Signal(HB * 8)
        byte = self.i.payload
        got = self.i.valid

        # the frame's CRC, one byte per cycle as it arrives (the host computes it with the
        # same algorithm, lpu.contract.protocol.CRC)
        m.submodules.rx_crc = rx_crc = CRC(data_width=8).create()
        m.d.comb += rx_crc.data.eq(byte)
        crc = rx_crc.crc

        with m.If(got):
            m.d.sync += quiet.eq(0)
        with m.Elif(quiet != self.timeout):
            m.d.sync += quiet.eq(quiet + 1)
        timed_out = quiet == self.timeout

        field = lambda i: buf[8 * i:8 * i + 8]
        m.d.comb += [host.region.eq(field(0)), host.bank.eq(field(1)),
                     host.addr.eq(Cat(field(2), field(3))), host.part.eq(field(4)),
                     host.wdata.eq(buf[40:40 + 8 * HB])]

        # reply transmitter: 0xA5, status, len, payload, crc. The byte on the line is chosen
        # by the reply's phase, a register, and the payload by the bytes left of it (the byte
        # counter's compares with ``4 + rlen`` chose it before the reply's CRC: the ULX3S
        # ``tiny`` tile's critical path at 100 MHz, 11.0 ns)
        SYNC, STATUS, LEN0, LEN1, PAYLOAD, CRC0, CRC1 = range(7)
        tx_phase = Signal(range(7))
        tx_left = Signal(range(longest + 1))
        tx_byte = Signal(8)
        m.submodules.tx_crc = tx_crc_unit = CRC(data_width=8).create()
        m.d.comb += tx_crc_unit.data.eq(tx_byte)
        tx_crc = tx_crc_unit.crc
        with m.Switch(tx_phase):
            for phase, value in ((SYNC, SYNC_REP), (STATUS, status), (LEN0, rlen[:8]),
                                 (LEN1, rlen[8:]), (PAYLOAD, rbuf[:8]), (CRC0, tx_crc[:8]),
                                 (CRC1, tx_crc[8:])):
                with m.Case(phase):
                    m.d.comb += tx_byte.eq(value)

        def reply(code, n=0):
            m.d.sync += [status.eq(code), rlen.eq(n), tx_phase.eq(SYNC)]
            m.d.comb += tx_crc_unit.start.eq(1)
            m.next = "REPLY"

        with m.FSM():
            with m.State("IDLE"):
                with m.If(got & (byte == SYNC_REQ)):
                    m.d.comb += rx_crc.start.eq(1)
                    m.d.sync += [idx.eq(0), at.eq(1)]
                    m.next = "CMD"
            with m.State("CMD"):
                with m.If(got):
                    m.d.sync += cmd.eq(byte)
                    m.d.comb += rx_crc.valid.eq(1)
                    m.next = "LEN0"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("LEN0"):
                with m.If(got):
                    m.d.sync += length[:8].eq(byte)
                    m.d.comb += rx_crc.valid.eq(1)
                    m.next = "LEN1"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("LEN1"):
                with m.If(got):
                    m.d.sync += length[8:].eq(byte)
                    m.d.comb += rx_crc.valid.eq(1)
                    with m.If(Cat(length[:8], byte) > MAXP):
                        m.next = "DISCARD"
                    with m.Elif(Cat(length[:8], byte) == 0):
                        m.next = "CRC0"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("PAYLOAD"):
                with m.If(got):
                    for i in range(MAXP):              # one byte enable per position
                        with m.If(at[i]):
                            m.d.sync += buf[8 * i:8 * i + 8].eq(byte)
                    m.d.sync += [idx.eq(idx + 1), at.eq(at << 1)]
                    m.d.comb += rx_crc.valid.eq(1)
                    with m.If(idx + 1 == length[:len(idx)]):     # length <= MAXP here
                        m.next = "CRC0"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("CRC0"):
                with m.If(got):
                    m.d.sync += rcrc.eq(byte)
                    m.next = "CRC1"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("CRC1"):
                with m.If(got):
                    # the frame's CRC checked here, into a flip-flop: in CHECK the 16-bit
                    # compare was ahead of the command's decode and the reply register's
                    # clock enables (the ULX3S 8-lane tile's bridge paths at 100 MHz)
                    m.d.sync += crc_ok.eq(Cat(rcrc, byte) == crc)
                    m.next = "CHECK"
                with m.Elif(timed_out):
                    reply(Status.TIMEOUT)
            with m.State("DISCARD"):                 # too long for any command: resync on silence
                with m.If(timed_out):
                    reply(Status.BAD_LENGTH)
            with m.State("CHECK"):
                with m.If(~crc_ok):
                    reply(Status.BAD_CRC)
                with m.Else():
                    def do_write():
                        m.d.comb += host.we.eq(1)
                        reply(Status.OK)

                    def do_read():
                        m.d.comb += host.re.eq(1)
                        m.next = "READ"

                    def do_start():
                        m.d.comb += host.start.eq(1)
                        reply(Status.OK)

                    def do_status():
                        m.d.sync += rbuf.eq(Cat(host.busy, Const(0, 7), host.done))
                        reply(Status.OK, 2)

                    def do_info():
                        m.d.sync += rbuf.eq(Cat(*[Const(v, 8) for v in info]))
                        reply(Status.OK, len(info))

                    # command: (payload length, refused while the tile is busy, action)
                    commands = {Cmd.WRITE: (MAXP, True, do_write), Cmd.READ: (4, True, do_read),
                                Cmd.START: (0, True, do_start), Cmd.STATUS: (0, False, do_status),
                                Cmd.INFO: (0, False, do_info)}
                    with m.Switch(cmd):
                        for code, (n, idle_only, action) in commands.items():
                            with m.Case(code):
                                with m.If(length != n):
                                    reply(Status.BAD_LENGTH)
                                with m.Elif(host.busy if idle_only else 0):
                                    reply(Status.BUSY)
                                with m.Else():
                                    action()
                        with m.Default():
                            reply(Status.UNKNOWN_CMD)
            with m.State("READ"):
                # the reply register follows the read data until it is valid, so that its
                # clock enable does not wait for ``rvalid`` (the ULX3S 8-lane tile's bridge
                # paths at 100 MHz: 64 clock enables, 11 ns)
                m.d.sync += rbuf.eq(host.rdata)
                with m.If(host.rvalid):
                    reply(Status.OK, HB)
            with m.State("REPLY"):
                m.d.comb += [self.o.payload.eq(tx_byte), self.o.valid.eq(1)]
                with m.If(self.o.ready):
                    # the bytes after the sync byte, up to the CRC, go into the CRC
                    m.d.comb += tx_crc_unit.valid.eq((tx_phase != SYNC) & (tx_phase < CRC0))
                    with m.Switch(tx_phase):
                        with m.Case(LEN1):
                            m.d.sync += [tx_left.eq(rlen),
                                         tx_phase.eq(Mux(rlen == 0, CRC0, PAYLOAD))]
                        with m.Case(PAYLOAD):
                            m.d.sync += [rbuf.eq(rbuf >> 8), tx_left.eq(tx_left - 1),
                                         tx_phase.eq(Mux(tx_left == 1, CRC0, PAYLOAD))]
                        with m.Case(CRC1):
                            m.next = "IDLE"
                        with m.Default():
                            m.d.sync += tx_phase.eq(tx_phase + 1)
        return m
