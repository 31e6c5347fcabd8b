"""The contract: what ``rtl/``, ``model/`` and ``tb/`` all import. Pure Python, no HDL.

``config`` (the one configuration object and its presets), ``isa`` (the instruction encoding
and the host port's regions), ``timing`` (every latency-derived scheduling rule),
``hostport`` (the host port's operations as accesses), ``protocol`` (the serial bridge's
frames) and ``bits`` (vectors packed into flat buses).
"""
