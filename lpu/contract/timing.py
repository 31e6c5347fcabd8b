"""Every scheduling rule of the tile, derived once from the units' latencies.

The sequencer (``rtl/sequencer.py``) loads its counters from these rules and the golden
model (``model.tile.schedule``) predicts every issue cycle with them; ``docs/isa.md`` states
them in words. Each rule is a number of cycles after an instruction's *issue* cycle (or, for
``VX``, after its first accumulator read ``r0``) and is written with ``+``, ``-`` and ``<<``
only, so it evaluates on Python integers (the model) and on Amaranth values (the sequencer)
alike.

Why each rule holds comes from the unit contracts:

* SRAM: a stream started on cycle ``i`` reads word ``r`` on ``i + stream_start_latency +
  r``; it is on the bank's output ``sram_read_latency`` later.
* MXM (``model.mxm``): an activation entering on ``t`` meets PE(k, n) on ``t + k + n`` and
  uses the weight written before that cycle; its result leaves on ``t + mxm_latency`` and
  is readable in the accumulators from ``t + mxm_latency + acc_visible_delay``.
* VXM: a row read on ``r`` arrives ``acc_read_latency`` later, and the VXM's result
  ``vxm_latency`` after that; one row takes ``vxm_passes`` cycles. The result is written
  to SRAM (or sent east) ``vx_write_latency`` after it leaves the VXM.

``RULES`` names the rules that bound an issue cycle; ``model.tile.schedule(loosen=...)``
moves one of them a cycle earlier, which ``tests/test_timing_rules.py`` uses to show each
is necessary (a result changes, or a port carries two transfers in one cycle) and safe.
"""

__all__ = ["Rules", "RULES", "EVENTS"]

# The unit-boundary events whose cycles the model predicts (``model.tile.Timing`` has a list
# of cycles for each) and the tile's probe port shows the testbenches (``rtl.tile``): one
# definition for both, and for the timelines of ``lpu.host.trace``.
EVENTS = {
    "issue": "an instruction issues (program order, HALT included)",
    "weight_rows": "a weight row is written into the array (LW, one per lane)",
    "activations": "an activation vector enters the array (MM)",
    "results": "a result vector leaves the array for the accumulators (MM)",
    "vx_reads": "an accumulator row's first pass is read for the VXM (VX)",
    "sram_writes": "a VXM result row is written to SRAM (VX)",
    "link_sends": "a VXM int8 row leaves on the east link (VX with link=1)",
    "rx_writes": "a vector arriving from the west link is written to SRAM (RX)",
}

# rule name: what it protects
RULES = {
    "bank_free": "an SRAM bank streams one word per cycle: a stream waits for the last one",
    "lw_after_lw": "the weight port writes one row per cycle",
    "weight_guard": "no PE sees its weight change under a moving activation",
    "mm_after_mm": "the array takes one activation per cycle",
    "acc_ready": "the VXM reads an accumulator only once every earlier update is visible",
    "vx_after_vx": "the accumulator read port serves one VXM pass per cycle",
    "halt": "done rises only after every weight row, update and SRAM write has landed",
}


class Rules:
    """The scheduling rules of one configuration."""

    def __init__(self, config):
        self.config = config
        c = config
        self.L, self.A, self.V, self.P = c.lanes, c.mxm_latency, c.vxm_latency, c.vxm_passes
        self._pass_shift = c.vxm_passes.bit_length() - 1    # vxm_passes is a power of two

    # ---- SRAM streams (LW, MM) ------------------------------------------------------------
    def stream_read(self, r):
        """A stream's word ``r`` is read (its address is on the bank) this long after the
        stream's start."""
        return self.config.stream_start_latency + r

    def stream_word(self, r):
        """A stream's word ``r`` is on the bank's output this long after the stream's start."""
        return self.stream_read(r) + self.config.sram_read_latency

    # ---- LW -------------------------------------------------------------------------------
    def weight_write(self, r):
        """LW: weight row ``r`` is written this long after issue."""
        return self.stream_word(r)

    @property
    def lw_stream(self):
        """LW: its bank's stream and the weight port are busy this long after issue."""
        return self.L

    @property
    def lw_done(self):
        """LW: every weight row written (HALT may issue) this long after issue."""
        return self.weight_write(self.L - 1) + 1

    # ---- MM -------------------------------------------------------------------------------
    def activation_enter(self, m):
        """MM: activation ``m`` enters the array this long after issue."""
        return self.stream_word(m)

    def mm_stream(self, count):
        """MM: its bank's stream and the array's input are busy this long after issue."""
        return count

    def weight_guard(self, count):
        """MM: an LW into this MM's weight buffer may issue this long after the MM's issue.
        The last activation's last PE, (L-1, L-1), meets row r's weight on
        ``enter + r + L - 1``, which must come before the new row r is written on
        ``j + weight_write(r)``."""
        return self.activation_enter(count - 1) + self.L - 1 - self.weight_write(0)

    def acc_ready(self, count):
        """MM: every one of its accumulator updates is readable this long after issue."""
        return self.activation_enter(count - 1) + self.A + self.config.acc_visible_delay

    # ---- VX (relative to r0, its first accumulator read) ----------------------------------
    def vx_read(self, e):
        """VX: accumulator row ``e`` is read on the ``P`` cycles from ``r0 + vx_read(e)``."""
        return e << self._pass_shift        # P * e, as a shift: no multiplier in hardware

    @property
    def vx_write_delay(self):
        """VX: a row read on ``r`` (its first pass) is written to SRAM on ``r + this``."""
        return self.config.acc_read_latency + self.V + self.config.vx_write_latency

    def vx_next(self, count):
        """VX: the next VX may issue on ``r0 + this`` (this VX's last read)."""
        return self.vx_read(count) - 1

    def vx_done(self, count):
        """VX: every SRAM write landed (HALT may issue) on ``r0 + this``."""
        return self.vx_read(count - 1) + self.vx_write_delay + 1
