from amaranth import *
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .delay import delay
from .interfaces import host_port_signature
from .tile import PROBE_LAYOUT, LpuTile

__all__ = ["LpuChip", "chip_host_signature"]


def chip_host_signature(config):
    """The tile's host port (:func:`rtl.interfaces.host_port_signature`) plus ``tile``, which
    tile an access goes to. ``start`` starts every tile on the same cycle; ``busy`` is high
    while any tile runs, ``done`` when every tile has halted."""
    members = dict(host_port_signature(config).members.items())
    members["tile"] = Out(range(max(2, config.tiles)))
    return wiring.Signature(members)


class LpuChip(wiring.Component):
    """``config.tiles`` tiles (:class:`rtl.tile.LpuTile`) in a row. Between neighbours, an
    eastbound stream link: a VX row tile k sends (``link=1``) arrives at tile k+1
    ``config.link_latency`` cycles later, one vector per cycle, with no back-pressure: the
    link delivers on the cycle it delivers (``model.chip`` states who may receive it).
    ``probe`` has each tile's monitor events (:data:`rtl.tile.PROBE_LAYOUT`)."""

    def __init__(self, config):
        self.config = config
        super().__init__({
            "host": In(chip_host_signature(config)),
            "probe": Out(data.ArrayLayout(PROBE_LAYOUT, config.tiles)),
        })

    def elaborate(self, platform):
        cfg = self.config
        m = Module()
        tiles = []
        for k in range(cfg.tiles):
            tile = LpuTile(cfg)
            m.submodules[f"tile{k}"] = tile
            tiles.append(tile)
        host = self.host
        tile_d = Signal.like(host.tile, name="tile_d")       # reads answer a cycle later
        m.d.sync += tile_d.eq(host.tile)
        for k, tile in enumerate(tiles):
            mine = host.tile == k
            m.d.comb += [
                tile.host.we.eq(host.we & mine), tile.host.re.eq(host.re & mine),
                tile.host.region.eq(host.region), tile.host.bank.eq(host.bank),
                tile.host.addr.eq(host.addr), tile.host.part.eq(host.part),
                tile.host.wdata.eq(host.wdata), tile.host.start.eq(host.start),
                self.probe[k].eq(tile.probe),
            ]
            with m.If(tile_d == k):
                m.d.comb += [host.rdata.eq(tile.host.rdata), host.rvalid.eq(tile.host.rvalid)]
        m.d.comb += [host.busy.eq(Cat(*[t.host.busy for t in tiles]).any()),
                     host.done.eq(Cat(*[t.host.done for t in tiles]).all())]
        # the links: tile k's VX rows to tile k+1, link_latency registers on the way
        for k in range(cfg.tiles - 1):
            src, dst = tiles[k], tiles[k + 1]
            m.d.comb += [
                dst.link_in_valid.eq(delay(m, src.link_out_valid, cfg.link_latency, f"link{k}v")),
                dst.link_in_data.eq(delay(m, src.link_out_data, cfg.link_latency, f"link{k}d")),
            ]
        return m
