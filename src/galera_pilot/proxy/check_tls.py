"""The proxy's own TLS: HAProxy checks the agents over HTTPS with its certificate (`check-ssl verify
required`), and the kernel-mode proxy asks them over HTTPS too. MySQL sessions are not touched: HAProxy
cannot terminate MySQL TLS (it starts after the server's greeting), so it passes it through and clients
verify the node's certificate, which names the endpoint addresses too."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from galera_pilot.errors import ConfigError
from galera_pilot.files import write_private
from galera_pilot.tls import http
from galera_pilot.tls.bundle import load_bundle
from galera_pilot.tls.contexts import client_context

CHECK_PEM = "check-client.pem"  # certificate and key in one file, as HAProxy's `crt` wants them
LOADED = "tls-loaded.json"  # what the running checks trust and present (a CA rotation waits for it)


class ProxyTls(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="false: check the agents over plain HTTP (a --no-tls cluster)")
    bundle: Path | None = Field(None, description="the proxy's bundle (galera-pilot pki issue proxy …): "
                                "ca.pem, node.pem, node.key, api-token; required when enabled")

    @field_validator("bundle")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"must be an absolute path, got {str(value)!r}")
        return value


def prepare_check_tls(tls: ProxyTls, run_dir: Path) -> tuple[str, str] | None:
    """(CA file, combined certificate file) for HAProxy's checks, None without TLS; also makes this
    process's API client verify the agents with the bundle's CA."""
    if not tls.enabled:
        return None
    if tls.bundle is None:
        raise ConfigError("field 'tls.bundle': required while tls.enabled is true (the proxy's bundle from "
                          "`galera-pilot pki issue proxy --ip …`), or set tls.enabled: false")
    bundle = load_bundle(tls.bundle)
    run_dir.mkdir(parents=True, exist_ok=True)
    combined = run_dir / CHECK_PEM
    write_private(combined, bundle.cert.read_text().rstrip("\n") + "\n" + bundle.key.read_text())
    http.use(http.ApiClient(client_context(bundle.ca, bundle.cert, bundle.key), bundle.api_token()))
    return str(bundle.ca), str(combined)


def record_loaded(tls: ProxyTls, run_dir: Path) -> None:
    """Say, in run_dir/tls-loaded.json, which CAs the checks now trust and which CA signed the certificate
    they present: the proxy is in no DCS, and a CA rotation must know the proxy has come along before
    its next phase (a proxy trusting only the old CA would mark every re-issued agent DOWN)."""
    if not tls.enabled or tls.bundle is None:
        return
    bundle = load_bundle(tls.bundle)
    write_private(run_dir / LOADED, json.dumps({"trust": list(bundle.trust_ids()), "signer": bundle.signer_id()})
                  + "\n", 0o644)


def loaded(run_dir: Path) -> tuple[tuple[str, ...], str] | None:
    """(trust, signer) the proxy recorded (record_loaded), None when it recorded nothing readable."""
    try:
        data = json.loads((run_dir / LOADED).read_text())
        return tuple(data["trust"]), str(data["signer"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
