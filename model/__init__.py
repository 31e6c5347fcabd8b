"""The golden model: the executable specification of the tile, in NumPy only.

Nothing here imports Amaranth or cocotb. Every result is bit-exact and every cycle number is
exact: the RTL must match both.
"""
