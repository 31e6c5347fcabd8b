"""The serial host protocol: one definition of the framing, used by the bridge gateware
(``rtl/host_bridge.py``) and by the host side (:class:`BridgeClient`). See docs/protocol.md.

Request:  0x5A | cmd | len (2, LE) | payload (len) | crc16 (2, LE)
Reply:    0xA5 | status | len (2, LE) | payload (len) | crc16 (2, LE)
CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over everything after the sync byte.
"""

import struct

from amaranth.lib.crc import catalog as crc_catalog

__all__ = ["SYNC_REQ", "SYNC_REP", "Cmd", "Status", "crc16", "frame", "parse_reply",
           "BridgeClient", "ProtocolError"]

SYNC_REQ = 0x5A
SYNC_REP = 0xA5


class Cmd:
    WRITE = 0x01    # region, bank, addr (2), part, data (host word, LE) -> OK
    READ = 0x02     # region, bank, addr (2) -> host word (LE)
    START = 0x03    # -> OK, or BUSY
    STATUS = 0x04   # -> busy, done
    INFO = 0x05     # -> lanes, banks, addr_bits, acc_addr_bits, host word bytes, param parts


class Status:
    OK = 0
    BAD_CRC = 1
    UNKNOWN_CMD = 2
    BAD_LENGTH = 3
    TIMEOUT = 4     # a frame stopped arriving in the middle
    BUSY = 5

    NAMES = {0: "ok", 1: "bad CRC", 2: "unknown command", 3: "bad length", 4: "truncated frame",
             5: "busy"}


class ProtocolError(IOError):
    pass


# The frames' CRC (CRC-16/CCITT-FALSE: polynomial 0x1021, initial 0xFFFF, no reflection):
# one definition for both ends. The bridge builds its hardware from it
# (``CRC(data_width=8).create()``); the host computes it in software with ``compute``. Only
# the algorithm's parameters are imported from Amaranth, no HDL.
CRC = crc_catalog.CRC16_CCITT_FALSE


def crc16(data):
    return CRC(data_width=8).compute(bytes(data))


def frame(sync, code, payload=b""):
    body = bytes([code]) + struct.pack("<H", len(payload)) + bytes(payload)
    return bytes([sync]) + body + struct.pack("<H", crc16(body))


def parse_reply(data):
    """(status, payload, bytes used) of the first reply in ``data``, or None if incomplete.
    Raises ProtocolError on a CRC mismatch."""
    start = data.find(bytes([SYNC_REP]))
    if start < 0 or len(data) < start + 4:
        return None
    status = data[start + 1]
    n = struct.unpack("<H", data[start + 2:start + 4])[0]
    end = start + 4 + n + 2
    if len(data) < end:
        return None
    body = data[start + 1:start + 4 + n]
    if struct.unpack("<H", data[end - 2:end])[0] != crc16(body):
        raise ProtocolError("reply failed its CRC check")
    return status, bytes(data[start + 4:start + 4 + n]), end


class BridgeClient:
    """Request/response over a byte transport with ``write(bytes)`` and ``read(n)``
    (pyserial's Serial, or the simulated UART)."""

    def __init__(self, port, host_bytes):
        self.port = port
        self.host_bytes = host_bytes

    def request(self, cmd, payload=b""):
        self.port.write(frame(SYNC_REQ, cmd, payload))
        return self.reply()

    def reply(self):
        head = self._read(1)
        while head[0] != SYNC_REP:                 # skip noise before a reply
            head = self._read(1)
        hdr = self._read(3)
        status, n = hdr[0], struct.unpack("<H", hdr[1:3])[0]
        payload = self._read(n)
        crc = struct.unpack("<H", self._read(2))[0]
        if crc != crc16(hdr + payload):
            raise ProtocolError("reply failed its CRC check")
        return status, payload

    def _read(self, n):
        data = self.port.read(n)
        if len(data) != n:
            raise ProtocolError(f"serial timeout: expected {n} bytes, got {len(data)}")
        return data

    def _ok(self, cmd, payload=b""):
        status, reply = self.request(cmd, payload)
        if status != Status.OK:
            raise ProtocolError(f"bridge replied '{Status.NAMES.get(status, status)}' to command {cmd}")
        return reply

    def write(self, region, bank, addr, part, value):
        data = int(value).to_bytes(self.host_bytes, "little")
        self._ok(Cmd.WRITE, bytes([region, bank]) + struct.pack("<H", addr) + bytes([part]) + data)

    def read(self, region, bank, addr):
        return int.from_bytes(self._ok(Cmd.READ, bytes([region, bank]) + struct.pack("<H", addr)), "little")

    def start(self):
        self._ok(Cmd.START)

    def status(self):
        busy, done = self._ok(Cmd.STATUS)
        return bool(busy), bool(done)

    def info(self):
        return tuple(self._ok(Cmd.INFO))
