"""cocotb testbenches, one per unit plus the top."""
