"""Laying a cluster folder out: `cluster.yaml` (the marker that says the folder is ours), the generated
`credentials.yaml` (0600) and one folder per node with its agent configuration. Nothing here starts a
process; `up` does that with the folder this writes."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Any

import yaml

from galera_pilot.config import (
    NAME_PATTERN,
    SstMethod,
    dcs_url_carries_password,
    dump_config,
    parse_config,
    redact_dcs_url,
)
from galera_pilot.credentials import Credentials, save_credentials
from galera_pilot.dcs import get_dcs
from galera_pilot.embedded.tls import PKI_DIR, ensure_authority, ensure_operator_bundle
from galera_pilot.errors import ConfigError, PilotError
from galera_pilot.files import write_private
from galera_pilot.tls.authority import Authority

MARKER = "cluster.yaml"


BACKUPS = "backups"  # the embedded cluster's backup repository, a folder of DIR


def read_marker(directory: Path) -> dict[str, Any]:
    """DIR/cluster.yaml, checked: the folder's cluster name, DCS URL and node names."""
    marker = directory / MARKER
    try:
        meta = yaml.safe_load(marker.read_text())
    except FileNotFoundError:
        raise PilotError(f"{directory} is not a galera-pilot cluster folder (no {MARKER})") from None
    except yaml.YAMLError:
        raise ConfigError(f"{marker} is not valid YAML") from None
    if not isinstance(meta, dict) or meta.get("galera_pilot") != 1 or not isinstance(meta.get("nodes"), list):
        raise ConfigError(f"{marker} is not a galera-pilot cluster description")
    return meta


DEFAULT_BASE_ADDRESS = "127.0.0.2"


def lay_out(directory: Path, nodes: int | None, base_address: str | None, sst_method: SstMethod,
           cluster_name: str | None = None, use_seed: bool = True, dcs: str | None = None,
           tls: bool | None = None, pki_dir: Path | None = None, arbitrator: bool = False) -> Path:
    """Create DIR, or extend an existing cluster folder to `nodes` nodes; existing nodes are kept.
    `arbitrator`: the folder gets a garbd arbitrator (`arbitrator1`) if it has none yet.

    `dcs` (default: a SQLite file in DIR), `cluster_name` (default `galera`) and `tls` (default on) are
    fixed when DIR is created: an existing folder keeps its own, and asking for different ones is an
    error rather than a silent switch (its agents would no longer see each other; plaintext and TLS
    nodes cannot talk).
    """
    directory = directory.resolve()
    marker = directory / MARKER
    if directory.exists() and not directory.is_dir():
        raise PilotError(f"{directory} exists and is not a folder")
    if directory.is_dir() and not marker.exists() and any(directory.iterdir()):
        raise PilotError(f"{directory} is not empty and is not a galera-pilot cluster folder (no {MARKER}); "
                         "choose a new or empty folder")
    known_base = folder_base_address(directory) if marker.exists() else None
    if base_address is not None and known_base is not None and base_address != known_base:
        raise PilotError(f"{directory}'s nodes start at {known_base}, not {base_address}; drop --base-address (the "
                         "folder remembers it)")
    base_address = base_address or known_base or DEFAULT_BASE_ADDRESS
    try:
        first = ipaddress.ip_address(base_address)
    except ValueError:
        raise PilotError(f"--base-address {base_address!r} is not an IP address") from None
    if nodes is not None and nodes < 1:
        raise PilotError("--nodes must be at least 1")
    if cluster_name is not None and not re.fullmatch(NAME_PATTERN, cluster_name):
        raise PilotError(f"--cluster-name {cluster_name!r} must start with a letter and hold only letters, "
                         "digits, '-' and '_' (at most 63)")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o755)
    if marker.exists():
        existing = read_marker(directory)
        names = list(existing["nodes"])
        retired = list(existing.get("removed") or [])
        arbitrators = list(existing.get("arbitrators") or [])
        known_name = existing.get("cluster_name", "galera")
        dcs_url = existing["dcs"]
        if dcs is not None and dcs != dcs_url:
            raise PilotError(f"{directory} uses the DCS {redact_dcs_url(dcs_url)}, not {redact_dcs_url(dcs)}; "
                             "drop --dcs (the folder remembers its DCS)")
        if cluster_name is not None and cluster_name != known_name:
            raise PilotError(f"{directory} holds the cluster {known_name!r}, not {cluster_name!r}")
        cluster_name = known_name
        known_tls = bool(existing.get("tls", False))  # folders made before TLS existed run plaintext
        if tls is not None and tls != known_tls:
            raise PilotError(f"{directory} runs {'with' if known_tls else 'without'} TLS; drop "
                             f"{'--no-tls' if known_tls else '--tls'} (the folder remembers it)")
        tls = known_tls
        known_pki = existing.get("pki")
        if pki_dir is not None and known_pki is not None and Path(known_pki) != pki_dir.resolve():
            raise PilotError(f"{directory} uses the PKI in {known_pki}, not {pki_dir}; drop --pki-dir (the folder "
                             "remembers it)")
        pki_text = known_pki
    else:
        names, retired, arbitrators = [], [], []
        cluster_name = cluster_name or "galera"
        tls = True if tls is None else tls
        pki_text = str(pki_dir.resolve()) if (pki_dir is not None and tls) else None
        dcs_url = dcs or f"sqlite://{directory / 'dcs.sqlite'}"
        tls_files = None
        if tls and dcs_url.startswith("etcds://"):
            # The CLI's own certificate, before the first request: an etcd asking for client certificates
            # answers nothing without one.
            authority = ensure_authority(Authority(Path(pki_text) if pki_text else directory / PKI_DIR), cluster_name)
            tls_files = ensure_operator_bundle(authority)[1]
        store = get_dcs(dcs_url, cluster_name, tls_files)  # validates the URL before anything is written
        try:
            if not dcs_url.startswith("sqlite://") and store.list(""):
                raise PilotError(f"the DCS {redact_dcs_url(dcs_url)} already holds a cluster named "
                                 f"{cluster_name!r}; choose another --cluster-name (a new folder must "
                                 "not join a cluster it has no credentials or data for)")
        finally:
            store.close()
        save_credentials(directory / "credentials.yaml", Credentials.generate())
    # Members taken out by `galera-pilot remove` keep their folder, name and address: never reused. Data
    # nodes are numbered among themselves (node1, node2, ...); addresses are handed out in order to all.
    nodes = len(names) if nodes is None and marker.exists() else (nodes or 3)  # an existing folder keeps its size
    numbered = len(names) + sum(1 for name in retired if name not in arbitrators and not name.startswith("arbitrator"))
    wanted = [("node", f"node{numbered + i + 1}") for i in range(max(0, nodes - len(names)))]
    if arbitrator and not arbitrators:  # a removed one's name is never reused (its folder is marked)
        number = next(n for n in range(1, len(retired) + 2) if f"arbitrator{n}" not in retired)
        wanted.append(("arbitrator", f"arbitrator{number}"))
    for role, name in wanted:
        address = str(first + len(names) + len(retired) + len(arbitrators))
        base = directory / name
        base.mkdir(exist_ok=True)
        fields: dict[str, Any] = {
            "name": name, "cluster_name": cluster_name, "address": address, "dcs": dcs_url,
            "base_dir": str(base), "credentials_file": str(directory / "credentials.yaml"),
            "sst_method": sst_method, "use_seed": use_seed,
            # The CA key is on this machine: each agent renews its own certificate (agent/tls_keeper.py).
            "tls": {"enabled": tls, "authority": (pki_text or str(directory / "pki")) if tls else None},
        }
        if role == "arbitrator":
            fields = {key: value for key, value in fields.items() if key not in ("sst_method", "use_seed")}
            fields["role"] = "arbitrator"
        else:
            fields["backup"] = {"repository": str(directory / BACKUPS)}  # `backup create --dir DIR` just works
        config = parse_config(fields, f"node {name}")
        _write_config(base / "agent.yaml", dump_config(config), dcs_url)
        (arbitrators if role == "arbitrator" else names).append(name)
    meta: dict[str, Any] = {"galera_pilot": 1, "cluster_name": cluster_name, "dcs": dcs_url, "nodes": names,
                            "tls": tls, "base_address": base_address}
    if arbitrators:
        meta["arbitrators"] = arbitrators  # garbd (agent/arbitrator.py): no data, a vote
    if retired:
        meta["removed"] = retired
    if pki_text:
        meta["pki"] = pki_text  # a PKI folder outside DIR (`up --pki-dir`); default DIR/pki
    _write_config(marker, yaml.safe_dump(meta, sort_keys=False), dcs_url)
    return directory


def folder_base_address(directory: Path) -> str | None:
    """Where an existing folder's addresses start: recorded in cluster.yaml, or (folders made before it was)
    node1's address, whose folder stays even when node1 was removed."""
    meta = read_marker(directory)
    if meta.get("base_address"):
        return str(meta["base_address"])
    try:
        node1 = yaml.safe_load((directory / "node1" / "agent.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return None
    return str(node1["address"]) if isinstance(node1, dict) and node1.get("address") else None


def _write_config(path: Path, text: str, dcs_url: str) -> None:
    """Atomically; 0600 when the DCS URL carries a password (etcd user:password@), else 0644."""
    write_private(path, text, 0o600 if dcs_url_carries_password(dcs_url) else 0o644)


def retire_node(directory: Path, name: str) -> None:
    """`galera-pilot remove`: the member leaves the folder's node list for its `removed` list; its folder
    stays (its datadir is kept, marked by its agent)."""
    marker = directory / MARKER
    meta = read_marker(directory)
    if name not in meta["nodes"] and name not in (meta.get("arbitrators") or []):
        return
    meta["nodes"] = [n for n in meta["nodes"] if n != name]
    meta["arbitrators"] = [n for n in meta.get("arbitrators") or [] if n != name]
    if not meta["arbitrators"]:
        del meta["arbitrators"]
    meta["removed"] = [*(meta.get("removed") or []), name]
    _write_config(marker, yaml.safe_dump(meta, sort_keys=False), meta["dcs"])
