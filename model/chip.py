"""A chip: ``tiles`` tiles in a row, joined by eastbound stream links, cycle-exact against
``rtl/chip.py``.

Every tile starts on the same cycle (cycle 0 of every tile is the same clock cycle). A VX with
``link=1`` on tile k sends its int8 rows east: the row it would have written to SRAM on cycle
``c`` arrives at tile k+1 on ``c + link_latency``, where an ``RX`` writes it to SRAM
(``model.tile.schedule`` states the receive rules). A link has no back-pressure: a vector is
delivered on the cycle it arrives, so a vector with no receive stream open, an RX that
never gets all its vectors, or a send from the last tile (no tile east of it) is a race, and
the chip refuses the program naming the tile, the instruction and the cycle.

Links only run east, so tile k's schedule depends only on tiles west of it: the tiles are
modelled one after another, west to east. The single-tile model is this chip with one tile.
"""

from lpu.contract.isa import ProgramError

from .tile import TileModel

__all__ = ["ChipModel"]


class ChipModel:
    def __init__(self, config):
        self.config = config
        self.tiles = [TileModel(config) for _ in range(config.tiles)]
        self.last_arrivals = []         # per tile: the (cycle, vector) pairs it received

    def run(self, programs):
        """Run one program per tile, all started together; returns each tile's counters."""
        if len(programs) != len(self.tiles):
            raise ProgramError(f"{len(programs)} programs for a chip of {len(self.tiles)} tiles")
        arrivals, counters, self.last_arrivals = [], [], []
        for k, (tile, program) in enumerate(zip(self.tiles, programs)):
            self.last_arrivals.append(arrivals)
            try:
                counters.append(tile.run(program, arrivals))
            except ProgramError as e:
                raise ProgramError(f"tile {k}: {e}") from None
            arrivals = [(c + self.config.link_latency, v) for c, v in tile.last_link]
        if arrivals:
            raise ProgramError(f"tile {len(self.tiles) - 1}: race: sends a vector east on cycle "
                               f"{arrivals[0][0] - self.config.link_latency}, and no tile is "
                               f"east of it")
        return counters

    @property
    def timings(self):
        return [tile.last_timing for tile in self.tiles]
