"""The lifecycle's records (cluster.py: Pause, Roll, RestartRequest) written with the DCS primitives: one
place that knows their keys. Only the roll's driver (lifecycle/driver.py) writes `roll` and creates restart
requests; only the named member's agent moves its request along (agent/restarts.py)."""

from __future__ import annotations

import json
import time

from galera_pilot.cluster import Pause, RestartRequest, Roll
from galera_pilot.dcs.base import DCS
from galera_pilot.errors import PilotError

DRIVER_KEY = "roll_driver"


def set_pause(dcs: DCS, by: str) -> bool:
    """Pause the cluster; False when it already was (the first pause's record stays)."""
    return dcs.create("pause", json.dumps(Pause(by, time.time()).to_dict()))


def clear_pause(dcs: DCS) -> bool:
    return dcs.delete("pause")


def create_roll(dcs: DCS, roll: Roll) -> bool:
    """Start a roll; False when one is already recorded (one roll at a time, whoever started it)."""
    return dcs.create("roll", json.dumps(roll.to_dict()))


class RollGone(PilotError):
    """The roll is no longer the one this driver drives (aborted, or replaced)."""


def save_roll(dcs: DCS, roll: Roll) -> None:
    """The driver's progress: written over the stored roll of the same id only (compare-and-set), so a
    driver that lost the roll (aborted meanwhile, or taken over) never writes it back."""
    current = dcs.get("roll")
    if current is None or json.loads(current.value).get("id") != roll.id:
        raise RollGone(f"rolling restart {roll.id} is no longer recorded (aborted); this driver stops")
    if not dcs.compare_and_set("roll", json.dumps(roll.to_dict()), current.version):
        raise RollGone(f"rolling restart {roll.id} changed under this driver (another one took over); it stops")


def delete_roll(dcs: DCS, roll_id: str) -> None:
    """Forget the roll and its restart requests."""
    for kv in dcs.list("restart/"):
        if json.loads(kv.value).get("roll") == roll_id:
            dcs.delete(kv.key, kv.version)
    current = dcs.get("roll")
    if current is not None and json.loads(current.value).get("id") == roll_id:
        dcs.delete("roll", current.version)


def hold_driver(dcs: DCS, me: str, ttl: float) -> bool:
    """Take or renew the roll's driver lease: at most one `galera-pilot restart` drives a roll."""
    return dcs.acquire_lease(DRIVER_KEY, me, ttl, "drives the rolling restart")


def release_driver(dcs: DCS, me: str) -> None:
    dcs.release_lease(DRIVER_KEY, me)


def driver_of(dcs: DCS) -> str | None:
    """Who holds the driver lease now (None: nobody drives the roll)."""
    return dcs.lease_holder(DRIVER_KEY)


def request_restart(dcs: DCS, request: RestartRequest) -> bool:
    """Ask `request.member`'s agent to restart; False (and nothing written) when this roll's request for it
    exists already: a driver that resumes must never reset one its agent moved along."""
    key = f"restart/{request.member}"
    current = dcs.get(key)
    if current is not None and json.loads(current.value).get("roll") == request.roll:
        return False
    if current is None:
        return dcs.create(key, json.dumps(request.to_dict()))
    return dcs.compare_and_set(key, json.dumps(request.to_dict()), current.version)  # an older roll's


def update_restart(dcs: DCS, request: RestartRequest) -> bool:
    """The agent's progress on its request; False when the request is gone or another replaced it (an
    aborted roll, a new one), so a late update never revives it."""
    key = f"restart/{request.member}"
    current = dcs.get(key)
    if current is None or json.loads(current.value).get("roll") != request.roll:
        return False
    return dcs.compare_and_set(key, json.dumps(request.to_dict()), current.version)
