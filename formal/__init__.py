"""Formal harnesses: each wraps one component of ``rtl/`` with a reference of its contract
and Amaranth ``Assert``/``Assume``/``Cover`` statements. ``lpu formal`` (``make formal``)
checks them with SymbiYosys (``yowasp-sby``) and Yosys's ``smtbmc`` with Yices (both from
PyPI): bounded model checking, and k-induction where a task says ``prove``.

A harness's free inputs are its ports (the solver picks them every cycle), so a
counterexample is a list of port values per cycle that ``lpu formal --replay`` feeds to the
same harness in a cocotb simulation; the ``ok`` port is low on a cycle where any assertion
fails.
"""
