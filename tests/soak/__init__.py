"""The fault-injection soak (issue 15): workloads, faults, a split-brain monitor and the checker.

`bench/soak.py` runs it for as long as asked; `tests/integration/test_soak.py` runs a short seeded one in
CI. The pure parts (the fault schedule, the checks over what the clients and the monitor recorded) are
unit-tested in tests/unit/test_soak_checker.py; the rest drives a real cluster.
"""
