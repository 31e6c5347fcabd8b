from .address_generator import AddressGeneratorHarness

__all__ = ["NoWrapHarness"]


class NoWrapHarness(AddressGeneratorHarness):
    """A deliberately false property, for the tests: "a stream's addresses never wrap below
    its base". ``lpu formal`` must fail it with a counterexample that replays in simulation."""

    def check(self, m, cond, name, *, when=1):
        if name == "addr":
            cond = cond & (self.dut_addr >= self.ref_base)
        super().check(m, cond, name, when=when)
