"""Prometheus, Alertmanager and OpenTelemetry Collector configuration for the mixin."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from certobs.mixin import MixinConfig


def prometheus_config(config: MixinConfig) -> dict[str, Any]:
    """Scrape certobs (directly or through the collector) often; evaluate rules often."""
    return {
        "global": {
            "scrape_interval": config.scrape_interval,
            "evaluation_interval": config.evaluation_interval,
        },
        "rule_files": ["../rules/certobs-recording.yaml", "../rules/certobs-alerts.yaml"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": [config.alertmanager_target]}]}]
        },
        "scrape_configs": [
            {
                "job_name": "certobs",
                "static_configs": [{"targets": list(config.certobs_targets)}],
            },
            {
                "job_name": "otel-collector",
                "honor_labels": True,
                "static_configs": [{"targets": [config.collector_target]}],
            },
        ],
    }


def alertmanager_config(config: MixinConfig) -> dict[str, Any]:
    """Deliver at once: certobs' failure alerts fire within one evaluation."""
    return {
        "route": {
            "receiver": "certobs-webhook",
            "group_by": ["alertname", "certificate_issuer_name", "certificate_id"],
            "group_wait": "5s",
            "group_interval": "1m",
            "repeat_interval": "4h",
        },
        "receivers": [
            {
                "name": "certobs-webhook",
                "webhook_configs": [{"url": config.webhook_url, "send_resolved": True}],
            }
        ],
    }


def collector_config(config: MixinConfig) -> dict[str, Any]:
    """OTLP in, memory-limited and batched, Prometheus out (scraped by the job above)."""
    port = config.collector_target.rpartition(":")[2]
    return {
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": {"endpoint": "0.0.0.0:4317"},
                    "http": {"endpoint": "0.0.0.0:4318"},
                }
            }
        },
        "processors": {
            "memory_limiter": {
                "check_interval": "1s",
                "limit_percentage": 80,
                "spike_limit_percentage": 20,
            },
            "batch": {"timeout": "2s", "send_batch_size": 1024},
        },
        "exporters": {
            "prometheus": {
                "endpoint": f"0.0.0.0:{port or '8889'}",
                "resource_to_telemetry_conversion": {"enabled": True},
            }
        },
        "service": {
            "pipelines": {
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": ["memory_limiter", "batch"],
                    "exporters": ["prometheus"],
                }
            }
        },
    }
