"""Amaranth components of the LPU tile, one per file."""
