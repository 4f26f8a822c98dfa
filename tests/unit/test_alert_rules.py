"""The shipped alert rules (docs/examples/alerts.yml) and their promtool tests (tests/alerts/alerts_test.yml).

promtool (Debian's `prometheus` package, which scripts/setup.sh installs) checks the file and runs the
unit tests; these tests fail, never skip, without it. The rules may only name metrics the agent exports
(agent/metrics.py): a renamed metric would otherwise leave an alert that silently never fires.
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from unit_helpers import make_config

from galera_pilot.agent.ha import Ha
from galera_pilot.agent.metrics import agent_registry, render_metrics
from galera_pilot.credentials import Credentials
from galera_pilot.dcs.sqlite import SQLiteDCS

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "docs" / "examples" / "alerts.yml"
RULE_TESTS = ROOT / "tests" / "alerts" / "alerts_test.yml"
METRICS_SOURCE = ROOT / "src" / "galera_pilot" / "agent" / "metrics.py"
ALERTS_DOC = ROOT / "docs" / "alerts.md"
METRIC_NAME = re.compile(r"galera_pilot_\w+")
CREDENTIALS = Credentials("pilot_admin", "admin-secret", "pilot_sst", "sst-Secret_123")


def promtool() -> str:
    found = shutil.which("promtool") or shutil.which("promtool", path="/usr/bin")  # also with a bare PATH
    if found is None:
        pytest.fail("promtool is missing: run scripts/setup.sh (it installs Debian's prometheus package, "
                    "which has promtool)", pytrace=False)
    return found


def run_promtool(*args: str) -> None:
    result = subprocess.run([promtool(), *args], cwd=ROOT, capture_output=True, text=True, timeout=120)
    output = f"$ promtool {' '.join(args)}\n{result.stdout}{result.stderr}"
    print(output)
    assert result.returncode == 0, output


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def exported_metric_names() -> set[str]:
    """Every metric name agent/metrics.py can emit, from its string literals; a counter's with the
    `_total` prometheus_client adds (and without its bare name, which is never exposed)."""
    tree = ast.parse(METRICS_SOURCE.read_text())
    names: set[str] = set()
    counters: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and METRIC_NAME.fullmatch(node.value):
            names.add(node.value)
        if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant) \
                and str(node.values[0].value).startswith("galera_pilot_"):
            pytest.fail(f"metrics.py line {node.lineno}: a metric name built at run time (an f-string) hides "
                        "from this check; write the name out", pytrace=False)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "CounterMetricFamily" and node.args:
            first = node.args[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                counters.add(first.value)
    return (names - counters) | {f"{name}_total" for name in counters}


def test_promtool_accepts_the_rule_file() -> None:
    run_promtool("check", "rules", str(RULES.relative_to(ROOT)))


def test_promtool_unit_tests_pass() -> None:
    run_promtool("test", "rules", str(RULE_TESTS.relative_to(ROOT)))


def test_the_rules_name_only_metrics_the_agent_exports() -> None:
    exported = exported_metric_names()
    assert {"galera_pilot_agent_cycle_errors_total", "galera_pilot_writer", "galera_pilot_crash_loop",
            "galera_pilot_wsrep_cluster_state_uuid_info"} <= exported  # the parse itself works
    unknown = {rule["alert"]: sorted(set(METRIC_NAME.findall(rule["expr"])) - exported) for rule in alert_rules()}
    assert {alert: names for alert, names in unknown.items() if names} == {}


def test_the_promtool_tests_feed_only_metrics_the_agent_exports() -> None:
    series = [s["series"] for test in yaml.safe_load(RULE_TESTS.read_text())["tests"] for s in test["input_series"]]
    used = {name for text in series for name in METRIC_NAME.findall(text.split("{")[0])}
    assert used - exported_metric_names() == set()


def test_every_alert_waits_has_a_severity_and_a_summary() -> None:
    rules = alert_rules()
    assert len({rule["alert"] for rule in rules}) == len(rules), "two alerts share a name"
    for rule in rules:
        assert rule["alert"].startswith("GaleraPilot"), rule["alert"]
        assert "for" in rule, rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert "$labels." in rule["annotations"]["summary"], rule["alert"]


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    missing = {rule["alert"]: sorted({"fires", "does not fire"} - {"fires" if f else "does not fire"
                                                                   for f in cases.get(rule["alert"], set())})
               for rule in alert_rules()}
    assert {alert: what for alert, what in missing.items() if what} == {}
    assert set(cases) <= {rule["alert"] for rule in alert_rules()}, "a promtool test names no shipped alert"


def test_docs_explain_every_alert_and_keep_no_second_copy() -> None:
    text = ALERTS_DOC.read_text()
    assert [rule["alert"] for rule in alert_rules() if rule["alert"] not in text] == []
    assert "examples/alerts.yml" in text
    assert "expr:" not in text, "docs/alerts.md must point at the rule file, not repeat the rules"


# ---- the metrics the new alerts need, as a real agent renders them --------------------------------------
def scrape(ha: Ha) -> dict[str, list[tuple[dict[str, str], float]]]:
    body, _ = render_metrics(agent_registry(ha))
    families: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            families.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return families


@pytest.fixture
def ha(tmp_path: Path) -> Iterator[Ha]:
    """A real agent (never started: no mariadbd, no threads) on a SQLite DCS."""
    dcs = SQLiteDCS(tmp_path / "dcs.sqlite", "galera")
    try:
        yield Ha(make_config(base_dir=str(tmp_path / "node1")), dcs, CREDENTIALS)
    finally:
        dcs.close()


def test_the_agent_exports_the_state_uuid_and_the_crash_loop(ha: Ha) -> None:
    ha.observer._query = lambda: {"wsrep_cluster_status": "Primary", "wsrep_local_state_comment": "Synced",
                                  "wsrep_cluster_size": "3",
                                  "wsrep_cluster_state_uuid": "5b444560-e983-11f1-bc65-8bd2b5f336d0"}
    ha.observer.observe_once()
    metrics = scrape(ha)
    assert metrics["galera_pilot_wsrep_cluster_state_uuid_info"] == [
        ({"member": "node1", "uuid": "5b444560-e983-11f1-bc65-8bd2b5f336d0"}, 1.0)]
    assert metrics["galera_pilot_crash_loop"] == [({"member": "node1"}, 0.0)]
    assert metrics["galera_pilot_wsrep_primary"] == [({"member": "node1"}, 1.0)]
    assert set(metrics) <= exported_metric_names()  # what the name check parses covers what is emitted
    ha.exits.crash_loop = "it exited 5 times within 300 s (crash loop)"
    assert scrape(ha)["galera_pilot_crash_loop"] == [({"member": "node1"}, 1.0)]


def test_no_state_uuid_while_mariadbd_does_not_answer(ha: Ha) -> None:
    ha.observer.mark_stopped()
    metrics = scrape(ha)
    assert "galera_pilot_wsrep_cluster_state_uuid_info" not in metrics
    assert metrics["galera_pilot_wsrep_primary"] == [({"member": "node1"}, 0.0)]
