"""Real network partitions between loopback addresses: iptables drops every packet between the cut-off
address and the others (Galera, IST/SST, SQL and the agents' REST API alike), in a chain of the test's
own, so a run killed mid-test leaves rules that the next run's `remove_chain` clears."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Mapping


def iptables(*args: str, check: bool = True) -> int:
    return subprocess.run(["iptables", "-w", *args], check=check, capture_output=True).returncode


def remove_chain(chain: str) -> None:
    """Unhook and delete `chain`, however many times it is hooked (also when it does not exist)."""
    for _ in range(10):
        if iptables("-D", "INPUT", "-j", chain, check=False) != 0:
            break
    iptables("-F", chain, check=False)
    iptables("-X", chain, check=False)


@contextlib.contextmanager
def partition(chain: str, addresses: Mapping[str, str], cut_off: str) -> Iterator[Callable[[], None]]:
    """Drop all traffic between cut_off's address and every other one of `addresses` (name -> address);
    yields a function that heals, and removes the chain on the way out."""
    iptables("-N", chain)
    iptables("-I", "INPUT", "-j", chain)
    for other in addresses:
        if other != cut_off:
            iptables("-A", chain, "-s", addresses[cut_off], "-d", addresses[other], "-j", "DROP")
            iptables("-A", chain, "-s", addresses[other], "-d", addresses[cut_off], "-j", "DROP")

    def heal() -> None:
        iptables("-F", chain, check=False)

    try:
        yield heal
    finally:
        remove_chain(chain)
