"""The inventory's observations, computed from snapshots at collection time.

Used by both export routes: the fast path's store turns them into data points directly (no
per-series cost in the SDK, no SDK cardinality limit), and with an application's own
MeterProvider they feed observable gauges.
"""

from __future__ import annotations

import sys
import time
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
    counts: dict[tuple[str, str, str], int] = {}
    for inventory in module.inventories():
        _one(inventory, now, result, counts)
    # Summed over all inventories: one series per status, issuer and key algorithm.
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
    return result


_VALID = "valid"
_EXPIRING = "expiring"
_EXPIRED = "expired"
_NOT_YET_VALID = "not_yet_valid"


def _one(
    inventory: Any, now: float, result: dict[str, Points], counts: dict[tuple[str, str, str], int]
) -> None:
    # This loop runs once per certificate per collection (100,000 certificates must collect in
    # well under half a second): CertificateInfo.status() inlined, locals only, no enum lookups.
    policy = inventory.policy
    fraction = policy.fraction
    floor = policy.floor_days * 86400.0 if policy.floor_days is not None else -1.0
    per_certificate = inventory.per_certificate
    add_after = result[m.CERTIFICATE_NOT_AFTER].append
    add_before = result[m.CERTIFICATE_NOT_BEFORE].append
    for entry in inventory.entries():
        info = entry.info
        not_before = info.not_before
        not_after = info.not_after
        if now < not_before:
            status = _NOT_YET_VALID
        elif now >= not_after:
            status = _EXPIRED
        else:
            left = not_after - now
            if left < fraction * (not_after - not_before) or left < floor:
                status = _EXPIRING
            else:
                status = _VALID
        key = (status, entry.issuer_name, info.key_algorithm)
        counts[key] = counts.get(key, 0) + 1
        if per_certificate:
            labels = entry.attributes
            add_after((labels, not_after))
            add_before((labels, not_before))
    for probe in _probes(inventory):
        labels_: dict[str, Any] = {
            a.CERTIFICATE_ID: probe.endpoint.name,
            a.SERVER_ADDRESS: probe.endpoint.host,
            a.SERVER_PORT: probe.endpoint.port,
        }
        if probe.chain_valid is not None:
            valid = dict(labels_)
            if probe.tls_version:
                valid[a.TLS_PROTOCOL_VERSION] = probe.tls_version
            result[m.CERTIFICATE_ENDPOINT_CHAIN_VALID].append((valid, float(probe.chain_valid)))
        if probe.drift is not None:
            result[m.CERTIFICATE_ENDPOINT_DRIFT].append((labels_, float(probe.drift)))


def _probes(inventory: Any) -> Iterator[Any]:
    for probe in inventory.probes():
        if probe.reason is None:
            yield probe
