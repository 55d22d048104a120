"""``certobs demo``: a simulated certificate service, instrumented only through the public API.

The service holds a small fleet of certificates issued by a private CA it creates at start
(real X.509, made with ``cryptography``), renews them through two issuers with realistic
latencies and failures, deploys them to several kinds of targets, builds and serves trust
bundles, and now and then revokes one.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import IO, Any

import certobs
from certobs import inventory
from certobs.semconv import attributes as a

TARGETS = ("nginx", "aws_alb", "kubernetes_secret", "f5")
ENVIRONMENTS = ("prod", "staging")
ISSUERS = ("letsencrypt", "corp-ca")
BUNDLES = (("public-roots", "pem"), ("internal-chain", "pem"), ("java-trust", "jks"))


class ChallengeFailedError(Exception):
    """The ACME server could not validate the domain."""


class RateLimitedError(Exception):
    """The CA refused the order: too many certificates for this name."""


class DeploymentRejectedError(Exception):
    """The target refused the new certificate."""


@dataclass
class ManagedCertificate:
    """A certificate the service is responsible for."""

    cert_id: str
    issuer: str
    target: str
    environment: str
    certificate: Any = None
    history: list[Any] = field(default_factory=list)


class PrivateCA:
    """A throw-away CA that signs real certificates for the demo."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ec, self._oid = x509, hashes, ec, NameOID
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "certobs demo CA")])
        self._serial = random.getrandbits(48)

    def issue(self, common_name: str, *, lifetime_days: int, age_days: float = 0.0) -> Any:
        """Sign a leaf certificate for ``common_name``, ``age_days`` into its lifetime."""
        x509 = self._x509
        key = self._ec.generate_private_key(self._ec.SECP256R1())
        start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=age_days)
        self._serial += 1
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(self._oid.COMMON_NAME, common_name)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(self._serial)
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=lifetime_days))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(common_name)]), False)
            .sign(self.key, self._hashes.SHA256())
        )


def _latency(rng: random.Random, median: float, spread: float = 0.6, cap: float = 8.0) -> float:
    """A log-normal latency: most calls near the median, a long tail, never above ``cap``."""
    return min(rng.lognormvariate(0.0, spread) * median, cap)


class CertificateService:
    """The simulated service. Every lifecycle step is instrumented with certobs."""

    def __init__(self, rng: random.Random, ca: PrivateCA) -> None:
        self.rng = rng
        self.ca = ca
        self.fleet: list[ManagedCertificate] = []
        names = ["api", "www", "mail", "vpn", "grafana", "auth", "billing", "search", "cdn", "ci"]
        for i, name in enumerate(names):
            issuer = ISSUERS[i % 2]
            managed = ManagedCertificate(
                cert_id=f"{name}.example.com",
                issuer=issuer,
                target=TARGETS[i % len(TARGETS)],
                environment=ENVIRONMENTS[i % 3 == 2],
            )
            lifetime = 90 if issuer == "letsencrypt" else 365
            managed.certificate = ca.issue(
                managed.cert_id, lifetime_days=lifetime, age_days=lifetime * rng.uniform(0.55, 0.95)
            )
            self.fleet.append(managed)
            # The inventory reports every certificate the service holds: expiry and status.
            inventory.track(managed.certificate, id=managed.cert_id, issuer=issuer)

    @certobs.issuance(arg_attributes={"cert_id": a.CERTIFICATE_ID})
    async def issue(self, cert_id: str, issuer: str) -> Any:
        """Issue a new certificate (a CSR round trip to the CA)."""
        certobs.current_operation().set_attribute(a.CERTIFICATE_ISSUER_NAME, issuer)
        await asyncio.sleep(_latency(self.rng, 0.4))
        cert = self.ca.issue(cert_id, lifetime_days=90 if issuer == "letsencrypt" else 365)
        certobs.current_operation().set_certificate(cert)
        return cert

    @certobs.renewal
    async def renew(self, managed: ManagedCertificate) -> Any:
        """Renew through ACME or the corporate CA; ACME orders sometimes fail."""
        op = certobs.current_operation()
        op.set_attribute(a.CERTIFICATE_ISSUER_NAME, managed.issuer)
        # Most renewals are started by the expiry watcher; now and then someone runs one.
        manual = self.rng.random() < 0.1
        op.set_attribute(a.CERTIFICATE_OPERATION_TRIGGER, "manual" if manual else "scheduled")
        op.set_attribute(a.CERTIFICATE_ID, managed.cert_id)
        acme = managed.issuer == "letsencrypt"
        await asyncio.sleep(_latency(self.rng, 1.5 if acme else 0.5))
        roll = self.rng.random()
        if acme and roll < 0.08:
            raise ChallengeFailedError(f"http-01 challenge for {managed.cert_id} failed")
        if acme and roll < 0.11:
            raise RateLimitedError("too many certificates already issued for this domain")
        if roll > 0.98:
            raise TimeoutError(f"{managed.issuer} did not answer")
        # The demo compresses time: the new certificate is already well into its lifetime, so
        # that the next renewal of it shows a realistic lead time.
        lifetime = 90 if acme else 365
        age = lifetime * self.rng.uniform(0.55, 0.95)
        new = self.ca.issue(managed.cert_id, lifetime_days=lifetime, age_days=age)
        op.set_certificate(new, previous=managed.certificate)
        managed.history.append(managed.certificate)
        managed.certificate = new
        inventory.track(new, id=managed.cert_id, issuer=managed.issuer)
        return new

    async def deploy(self, managed: ManagedCertificate) -> None:
        """Push the certificate to where it is served."""
        operation = certobs.deployment(target_type=managed.target, environment=managed.environment)
        async with operation as op:
            op.set_attribute(a.CERTIFICATE_ID, managed.cert_id)
            op.set_certificate(managed.certificate)
            slow = {"aws_alb": 2.0, "f5": 1.2, "kubernetes_secret": 0.3, "nginx": 0.15}
            await asyncio.sleep(_latency(self.rng, slow[managed.target]))
            if self.rng.random() < (0.12 if managed.target == "f5" else 0.03):
                raise DeploymentRejectedError(f"{managed.target} rejected {managed.cert_id}")

    @certobs.revocation
    async def revoke(self, managed: ManagedCertificate) -> None:
        """Revoke the previous certificate after a key compromise drill."""
        certobs.current_operation().set_attribute(a.CERTIFICATE_ISSUER_NAME, managed.issuer)
        await asyncio.sleep(_latency(self.rng, 0.3))

    @certobs.bundle_build
    def build_bundle(self, bundle: str) -> bytes:
        """Assemble a trust bundle from the CA certificate."""
        time.sleep(_latency(self.rng, 0.02, cap=0.2))
        return b"".join(m.certificate.tbs_certificate_bytes[:16] for m in self.fleet)

    @certobs.validation
    def validate(self, managed: ManagedCertificate) -> bool:
        """Check the certificate's validity window."""
        certobs.current_operation().set_certificate(managed.certificate)
        now = dt.datetime.now(dt.timezone.utc)
        cert = managed.certificate
        return bool(cert.not_valid_before_utc <= now <= cert.not_valid_after_utc)

    def serve_bundle(self, bundle: str, fmt: str) -> None:
        """Answer a client asking for a bundle; a few ask for one that does not exist."""
        if self.rng.random() < 0.02:
            certobs.record_bundle_request(bundle, format=fmt, error_type="BundleNotFound")
        else:
            certobs.record_bundle_request(bundle, format=fmt)


async def _worker(service: CertificateService, deadline: float, tally: Counter[str]) -> None:
    rng = service.rng
    while time.monotonic() < deadline:
        managed = rng.choice(service.fleet)
        roll = rng.random()
        try:
            if roll < 0.35:
                await service.renew(managed)
                tally["renew"] += 1
                await service.deploy(managed)
                tally["deploy"] += 1
            elif roll < 0.5:
                await service.issue(f"new-{rng.randrange(10_000)}.example.com", managed.issuer)
                tally["issue"] += 1
            elif roll < 0.53:
                await service.revoke(managed)
                tally["revoke"] += 1
            elif roll < 0.65:
                bundle, _ = rng.choice(BUNDLES)
                service.build_bundle(bundle)
                tally["bundle.build"] += 1
            else:
                service.validate(managed)
                tally["validate"] += 1
            for _ in range(rng.randrange(1, 6)):
                bundle, fmt = rng.choice(BUNDLES)
                service.serve_bundle(bundle, fmt)
                tally["bundle requests"] += 1
        except (ChallengeFailedError, RateLimitedError, DeploymentRejectedError, TimeoutError) as e:
            # The service handles its failures; certobs recorded them as error.type.
            tally[f"failed: {type(e).__name__}"] += 1
        await asyncio.sleep(rng.uniform(0.0, 0.3))


async def run(
    duration: float, tally: Counter[str], *, seed: int | None = None, workers: int = 6
) -> None:
    """Run the simulated service for ``duration`` seconds, counting what it does in ``tally``."""
    rng = random.Random(seed)
    service = CertificateService(rng, PrivateCA())
    deadline = time.monotonic() + duration
    await asyncio.gather(*(_worker(service, deadline, tally) for _ in range(workers)))


def summary(tally: Counter[str], out: IO[str]) -> None:
    """Print what the demo service did."""
    out.write("certobs demo: what the service did\n")
    for name, count in sorted(tally.items()):
        out.write(f"  {name:<40} {count:>6}\n")
    out.flush()
