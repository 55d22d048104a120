"""The inventory's observations, computed from snapshots at collection time.

Used by both export routes: the fast path's store turns them into data points directly (no
per-series cost in the SDK, no SDK cardinality limit), and with an application's own
MeterProvider they feed observable gauges.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from certobs.semconv import attributes as a
from certobs.semconv import metrics as m

__all__ = ["observations"]

Points = list[tuple[Mapping[str, Any], float]]


def observations() -> dict[str, Points]:
    """Return the inventory gauges' (attributes, value) pairs, by metric name.

    Empty when the inventory module was never imported: collecting then costs nothing and
    loads nothing.
    """
    module = sys.modules.get("certobs.inventory")
    result: dict[str, Points] = {
        m.CERTIFICATE_NOT_AFTER: [],
        m.CERTIFICATE_NOT_BEFORE: [],
        m.CERTIFICATE_COUNT: [],
        m.CERTIFICATE_ENDPOINT_CHAIN_VALID: [],
        m.CERTIFICATE_ENDPOINT_DRIFT: [],
    }
    if module is None:
        return result
    now = time.time()
    for inventory in module.inventories():
        _one(inventory, now, result)
    return result


def _one(inventory: Any, now: float, result: dict[str, Points]) -> None:
    counts: Counter[tuple[str, str, str]] = Counter()
    policy = inventory.policy
    not_after = result[m.CERTIFICATE_NOT_AFTER]
    not_before = result[m.CERTIFICATE_NOT_BEFORE]
    per_certificate = inventory.per_certificate
    for entry in inventory.entries():
        info = entry.info
        counts[(info.status(now, policy).value, entry.issuer_name, info.key_algorithm)] += 1
        if per_certificate:
            not_after.append((entry.attributes, info.not_after))
            not_before.append((entry.attributes, info.not_before))
    result[m.CERTIFICATE_COUNT] += [
        (
            {
                a.CERTIFICATE_STATUS: status,
                a.CERTIFICATE_ISSUER_NAME: issuer,
                a.CERTIFICATE_KEY_ALGORITHM: algorithm,
            },
            float(count),
        )
        for (status, issuer, algorithm), count in counts.items()
    ]
    for probe in _probes(inventory):
        labels: dict[str, Any] = {
            a.CERTIFICATE_ID: probe.endpoint.name,
            a.SERVER_ADDRESS: probe.endpoint.host,
            a.SERVER_PORT: probe.endpoint.port,
        }
        if probe.chain_valid is not None:
            valid = dict(labels)
            if probe.tls_version:
                valid[a.TLS_PROTOCOL_VERSION] = probe.tls_version
            result[m.CERTIFICATE_ENDPOINT_CHAIN_VALID].append((valid, float(probe.chain_valid)))
        if probe.drift is not None:
            result[m.CERTIFICATE_ENDPOINT_DRIFT].append((labels, float(probe.drift)))


def _probes(inventory: Any) -> Iterator[Any]:
    for probe in inventory.probes():
        if probe.reason is None:
            yield probe
