"""The interfaces between the tile's units, declared once as Amaranth signatures (from the
side that drives them) and connected with ``wiring.connect``.

* :func:`host_port_signature`: the tile's host port, driven by a host (the serial bridge, a
  testbench, the native harness); the tile takes it flipped.
* :func:`weight_port_signature`: weight rows into the MXM (sequencer -> unit -> array).
* :func:`activation_port_signature`: activation vectors into the MXM with a tag carried
  alongside; the unit's tag is :func:`acc_tag_layout` (accumulator address and mode).
* :class:`HostRegion`, :class:`Opcode`: ``lpu.contract.isa``'s numbers as shaped enums.
"""

from amaranth import signed
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from lpu.contract.isa import Op, Region

__all__ = ["HostRegion", "Opcode", "host_port_signature", "weight_port_signature", "vx_tag_layout",
           "activation_port_signature", "acc_tag_layout", "vector_layout"]


class HostRegion(enum.Enum, shape=2):
    """What a host-port access addresses (``lpu.contract.isa.Region``)."""
    SRAM = Region.SRAM
    IMEM = Region.IMEM
    PARAM = Region.PARAM
    COUNTER = Region.COUNTER


class Opcode(enum.Enum, shape=4):
    """An instruction's ``op`` field (``lpu.contract.isa.Op``)."""
    LW = Op.LW
    MM = Op.MM
    VX = Op.VX
    RX = Op.RX
    WAIT = Op.WAIT
    HALT = Op.HALT


def vector_layout(lanes, bits=8):
    """One vector: ``lanes`` signed lanes of ``bits`` bits, lane 0 in the low bits."""
    return data.ArrayLayout(signed(bits), lanes)


def host_port_signature(config):
    """The host port, from the host's side. One access per cycle, honoured only while the
    tile is not ``busy``:

    * ``we`` with ``region``/``bank``/``addr``/``part``/``wdata``: a write (``part``: which
      ``config.param_part_bits`` of a parameter row, in ``wdata``'s low bits);
    * ``re`` with the same address: ``rdata`` holds the value ``config.host_read_latency``
      cycles later, with ``rvalid``;
    * ``start``: run the program from address 0; ``busy`` is high from the next cycle until
      the cycle ``HALT`` issues, ``done`` from then until the next ``start``.
    """
    hb = config.host_data_bits
    return wiring.Signature({
        "we": Out(1), "re": Out(1), "region": Out(HostRegion), "bank": Out(4),
        "addr": Out(16), "part": Out(max(1, (config.param_parts - 1).bit_length())),
        "wdata": Out(hb),
        "rdata": In(hb), "rvalid": In(1),
        "start": Out(1), "busy": In(1), "done": In(1),
    })


def weight_port_signature(config):
    """Weight row ``row`` of buffer ``buf`` written at the end of a cycle with ``valid``."""
    return wiring.Signature({
        "valid": Out(1), "buf": Out(1), "row": Out(range(config.lanes)),
        "data": Out(vector_layout(config.lanes)),
    })


def acc_tag_layout(config):
    """What an activation carries to the accumulators: the row it updates, and whether it
    adds to it (1) or overwrites it (0)."""
    return data.StructLayout({"addr": config.acc_addr_bits, "accumulate": 1})


def vx_tag_layout(config):
    """What a VX row carries through the VXM to its write-back: the SRAM word it goes to
    (address, bank), which result (``quant``: int8, or int32 as four byte planes), and
    whether it goes east on the chip's link (``link``) and to SRAM as well (``keep``)."""
    return data.StructLayout({"addr": config.addr_bits, "bank": config.bank_bits, "quant": 1,
                              "link": 1, "keep": 1})


def activation_port_signature(config, tag_shape):
    """An activation vector entering the array with ``valid``, the weight buffer it uses,
    and a ``tag`` the array carries alongside it to its result."""
    return wiring.Signature({
        "valid": Out(1), "buf": Out(1), "tag": Out(tag_shape),
        "data": Out(vector_layout(config.lanes)),
    })

