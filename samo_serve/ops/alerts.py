"""The Prometheus alert rules of the service, thresholds from settings: ``samo-serve k8s alerts`` writes
them as a Prometheus Operator ``PrometheusRule`` (k8s/prometheusrule.yaml); ``rule_groups`` is the plain
rules file Prometheus (and ``promtool test rules``) reads.

Every replica exports the drift gauges it computes (all from the same rollups), so the rules take the
``max`` per tenant and model version; a tenant's drift must last ``for`` before an alert fires.
"""

from __future__ import annotations

from typing import Any

from samo_serve.settings import Settings

__all__ = ["prometheus_rule", "rule_groups"]

FOR = "15m"  # how long a drift must hold before it alerts: longer than a burst, shorter than a shift


def rule_groups(settings: Settings) -> dict[str, Any]:
    drift = settings.observability.drift
    by = "max by (tenant, model_version)"
    return {
        "groups": [
            {
                "name": "samo-serve-drift",
                "rules": [
                    {
                        "alert": "SamoEmotionMixDrift",
                        "expr": f"{by} (ray_samo_drift_mix_js) > {drift.mix_js_threshold}",
                        "for": FOR,
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "{{ $labels.tenant }}: the emotion mix moved from the model's reference",
                            "description": (
                                'Jensen-Shannon divergence {{ $value | printf "%.3f" }} over the last '
                                f"{drift.window_hours} h (threshold {drift.mix_js_threshold}); "
                                "`samo-serve drift report --tenant {{ $labels.tenant }}` names the labels that moved."
                            ),
                        },
                    },
                    {
                        "alert": "SamoConfidenceDrift",
                        "expr": f"{by} (ray_samo_drift_confidence_psi) > {drift.confidence_psi_threshold}",
                        "for": FOR,
                        "labels": {"severity": "warning"},
                        "annotations": {
                            "summary": "{{ $labels.tenant }}: the model is not as sure as it was",
                            "description": (
                                'population-stability index {{ $value | printf "%.3f" }} of the top score '
                                f"(threshold {drift.confidence_psi_threshold})"
                            ),
                        },
                    },
                    {
                        "alert": "SamoTraceExportFailing",
                        "expr": "sum(rate(ray_samo_trace_export_failures_total[10m])) > 0",
                        "for": FOR,
                        "labels": {"severity": "info"},
                        "annotations": {
                            "summary": "spans are not reaching the OTLP endpoint (requests are unaffected)"
                        },
                    },
                ],
            }
        ]
    }


def prometheus_rule(settings: Settings, name: str = "samo-serve") -> dict[str, Any]:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "samo-serve"}},
        "spec": rule_groups(settings),
    }
