"""The drift alerts: k8s/prometheusrule.yaml is what `samo-serve k8s alerts` renders from the default settings,
and the rules pass `promtool test rules` (Debian's prometheus package; scripts/test.sh installs it): a
tenant whose drift gauge stays past the threshold alerts, one under it does not, a burst shorter than
`for` does not."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from samo_serve.ops.alerts import FOR, prometheus_rule, rule_groups
from samo_serve.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = Settings.model_construct()


def test_the_checked_in_rule_is_the_rendered_one() -> None:
    checked_in = yaml.safe_load((ROOT / "k8s" / "prometheusrule.yaml").read_text(encoding="utf-8"))
    assert checked_in == prometheus_rule(DEFAULTS), "stale: run `samo-serve k8s alerts --out k8s/prometheusrule.yaml`"


def test_the_thresholds_come_from_settings() -> None:
    drift = DEFAULTS.observability.drift
    exprs = [r["expr"] for r in rule_groups(DEFAULTS)["groups"][0]["rules"]]
    assert f"> {drift.mix_js_threshold}" in exprs[0]
    assert f"> {drift.confidence_psi_threshold}" in exprs[1]


def _series(gauge: str, tenant: str, replica: str, values: str) -> dict[str, str]:
    labels = f'tenant="{tenant}",model_version="m-1",replica="{replica}"'
    return {"series": f"ray_samo_drift_{gauge}{{{labels}}}", "values": values}


def test_promtool_fires_for_the_drifted_tenant_only(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (scripts/test.sh installs Debian's prometheus package)")
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(DEFAULTS)), encoding="utf-8")
    assert FOR == "15m"  # the series below are long enough to outlast it, the burst is not
    tests = {
        "rule_files": ["rules.yaml"],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    # two replicas of one tenant (the rule takes their max), another tenant, a short burst
                    _series("mix_js", "acme", "a", "0.3x40"), _series("mix_js", "acme", "b", "0.05x40"),
                    _series("mix_js", "beta", "a", "0.02x40"), _series("mix_js", "gamma", "a", "0.5x5 0.01x35"),
                    _series("confidence_psi", "beta", "a", "0.4x40"),
                ],
                "alert_rule_test": [
                    {"eval_time": "30m", "alertname": "SamoEmotionMixDrift", "exp_alerts": [
                        {"exp_labels": {"tenant": "acme", "model_version": "m-1", "severity": "warning"},
                         "exp_annotations": {
                             "summary": "acme: the emotion mix moved from the model's reference",
                             "description": "Jensen-Shannon divergence 0.300 over the last 24 h (threshold 0.1); "
                                            "`samo-serve drift report --tenant acme` names the labels that moved."}}]},
                    {"eval_time": "30m", "alertname": "SamoConfidenceDrift", "exp_alerts": [
                        {"exp_labels": {"tenant": "beta", "model_version": "m-1", "severity": "warning"},
                         "exp_annotations": {
                             "summary": "beta: the model is not as sure as it was",
                             "description": "population-stability index 0.400 of the top score (threshold 0.25)"}}]},
                    {"eval_time": "5m", "alertname": "SamoEmotionMixDrift", "exp_alerts": []},
                ],
            }
        ],
    }  # fmt: skip
    (tmp_path / "tests.yaml").write_text(yaml.safe_dump(tests), encoding="utf-8")
    done = subprocess.run([promtool, "test", "rules", "tests.yaml"], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
