"""The instrumentation API records exactly what the registry says, and never hurts the caller."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading

import pytest

import certobs
from certobs import _aggregate, _errors
from certobs.semconv import attributes as a
from certobs.semconv.metrics import (
    CERTIFICATE_BUNDLE_REQUESTS,
    CERTIFICATE_OPERATION_ACTIVE,
    CERTIFICATE_OPERATION_DURATION,
    METRICS,
)
from certobs.testing import capture

DURATION = CERTIFICATE_OPERATION_DURATION


class RenewalFailed(Exception):
    """A user exception."""


PRESETS = [
    (certobs.issuance, "issue"),
    (certobs.renewal, "renew"),
    (certobs.revocation, "revoke"),
    (certobs.deployment, "deploy"),
    (certobs.bundle_build, "bundle.build"),
    (certobs.validation, "validate"),
]


@pytest.mark.parametrize(("preset", "name"), PRESETS)
def test_preset_records_duration_and_active(certobs_telemetry, preset, name):
    """Each preset records the duration histogram and the active gauge under its name."""

    @preset(issuer="corp-ca", target_type="nginx", environment="prod")
    def work(x):
        return x * 2

    assert work(21) == 42
    point = certobs_telemetry.point(
        DURATION,
        {
            a.CERTIFICATE_OPERATION_NAME: name,
            a.CERTIFICATE_ISSUER_NAME: "corp-ca",
            a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE: "nginx",
            a.DEPLOYMENT_ENVIRONMENT_NAME: "prod",
        },
    )
    assert point.count == 1
    assert point.sum >= 0
    assert tuple(point.explicit_bounds) == METRICS[DURATION].bucket_boundaries
    active = certobs_telemetry.point(
        CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: name}
    )
    assert active.value == 0
    metrics = certobs_telemetry.metrics()
    assert metrics[DURATION].unit == "s"
    assert metrics[CERTIFICATE_OPERATION_ACTIVE].unit == "{operation}"
    (span,) = certobs_telemetry.spans()
    assert span.name == f"certificate.{name}"
    assert span.attributes[a.CERTIFICATE_OPERATION_NAME] == name


@pytest.mark.parametrize(("preset", "name"), PRESETS)
def test_bare_preset_decorates_directly(certobs_telemetry, preset, name):
    """``@certobs.<preset>`` without parentheses decorates the function itself."""

    @preset
    def work():
        return "done"

    assert work() == "done"
    assert certobs_telemetry.point(DURATION, {a.CERTIFICATE_OPERATION_NAME: name}).count == 1


def test_failure_sets_error_type_and_propagates_same_exception(certobs_telemetry):
    """A user exception propagates as the same object with its traceback; error.type is set."""
    raised = RenewalFailed("rate limited")

    @certobs.renewal(issuer="letsencrypt")
    def renew():
        raise raised

    with pytest.raises(RenewalFailed) as info:
        renew()
    assert info.value is raised
    assert info.tb is not None
    assert "raise raised" in "".join(info.traceback[-1].statement.lines)
    etype = f"{__name__}.RenewalFailed"
    point = certobs_telemetry.point(
        DURATION,
        {
            a.CERTIFICATE_OPERATION_NAME: "renew",
            a.CERTIFICATE_ISSUER_NAME: "letsencrypt",
            a.ERROR_TYPE: etype,
        },
    )
    assert point.count == 1
    (span,) = certobs_telemetry.spans()
    assert span.status.status_code.name == "ERROR"
    assert span.attributes[a.ERROR_TYPE] == etype
    assert span.events[0].name == "exception"


def test_builtin_error_type_is_bare_name():
    """Built-in exceptions are named without a module, others with it."""
    assert certobs.error_type(TimeoutError()) == "TimeoutError"
    assert certobs.error_type(RenewalFailed()) == f"{__name__}.RenewalFailed"


def test_coroutine_is_timed_across_awaits(certobs_telemetry):
    """A coroutine's duration covers its awaits, and it stays a coroutine function."""

    @certobs.deployment(target_type="aws_alb")
    async def deploy(delay):
        await asyncio.sleep(delay)
        return "ok"

    assert inspect.iscoroutinefunction(deploy)
    assert asyncio.run(deploy(0.05)) == "ok"
    point = certobs_telemetry.point(
        DURATION,
        {a.CERTIFICATE_OPERATION_NAME: "deploy", a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE: "aws_alb"},
    )
    assert point.count == 1
    assert point.sum >= 0.05


def test_coroutine_failure_propagates(certobs_telemetry):
    """An exception raised after an await propagates unchanged and is recorded."""

    @certobs.deployment
    async def deploy():
        await asyncio.sleep(0)
        raise RenewalFailed("no")

    with pytest.raises(RenewalFailed):
        asyncio.run(deploy())
    assert certobs_telemetry.point(
        DURATION,
        {a.CERTIFICATE_OPERATION_NAME: "deploy", a.ERROR_TYPE: f"{__name__}.RenewalFailed"},
    )


class Service:
    """Methods of every kind, decorated."""

    prefix = "svc"

    def __init__(self, name):
        self.name = name

    @certobs.issuance(arg_attributes={"cert_id": a.CERTIFICATE_ID})
    def issue(self, cert_id, *, issuer="corp"):
        """Issue."""
        certobs.current_operation().set_attribute(a.CERTIFICATE_ISSUER_NAME, issuer)
        return (self.name, cert_id)

    @certobs.validation(arg_attributes={"cert_id": a.CERTIFICATE_ID})
    @classmethod
    def check(cls, cert_id):
        return (cls.prefix, cert_id)

    @classmethod
    @certobs.validation(arg_attributes={"cert_id": a.CERTIFICATE_ID})
    def check_inner(cls, cert_id):
        return (cls.prefix, cert_id)

    @certobs.revocation(arg_attributes={"serial": a.CERTIFICATE_SERIAL_NUMBER})
    @staticmethod
    def revoke(serial):
        return serial


def _span_attr(telemetry, key):
    return [s.attributes.get(key) for s in telemetry.spans()]


def test_methods_bind_and_map_arguments(certobs_telemetry):
    """Methods, classmethods and staticmethods bind correctly; mapped arguments are read."""
    svc = Service("a")
    assert svc.issue("x1") == ("a", "x1")
    assert svc.issue(cert_id="x2", issuer="le") == ("a", "x2")
    assert Service.issue(svc, "x3") == ("a", "x3")
    assert Service.check("c1") == ("svc", "c1")
    assert svc.check("c2") == ("svc", "c2")
    assert Service.check_inner("c3") == ("svc", "c3")
    assert Service.revoke("ABCD") == "ABCD"
    assert svc.revoke(serial="EF01") == "EF01"
    assert _span_attr(certobs_telemetry, a.CERTIFICATE_ID)[:6] == [
        "x1",
        "x2",
        "x3",
        "c1",
        "c2",
        "c3",
    ]
    assert _span_attr(certobs_telemetry, a.CERTIFICATE_SERIAL_NUMBER)[6:] == ["ABCD", "EF01"]
    # The identity attribute stays off the metric; the issuer set per call goes on it.
    assert (
        certobs_telemetry.point(
            DURATION, {a.CERTIFICATE_OPERATION_NAME: "issue", a.CERTIFICATE_ISSUER_NAME: "corp"}
        ).count
        == 2
    )
    assert (
        certobs_telemetry.point(
            DURATION, {a.CERTIFICATE_OPERATION_NAME: "issue", a.CERTIFICATE_ISSUER_NAME: "le"}
        ).count
        == 1
    )


def test_argument_mapping_positional_only_and_defaults(certobs_telemetry):
    """Positional-only parameters map by position; omitted arguments set nothing."""

    @certobs.renewal(arg_attributes={"cid": a.CERTIFICATE_ID, "env": a.DEPLOYMENT_ENVIRONMENT_NAME})
    def renew(cid, /, env=None):
        return cid

    renew("p1")
    renew("p2", "stage")
    renew("p3", env="prod")
    assert _span_attr(certobs_telemetry, a.CERTIFICATE_ID) == ["p1", "p2", "p3"]
    envs = [s.attributes.get(a.DEPLOYMENT_ENVIRONMENT_NAME) for s in certobs_telemetry.spans()]
    assert envs == [None, "stage", "prod"]


def test_signature_and_introspection_kept():
    """Decorated callables keep their signature, name, docstring and __wrapped__."""

    def renew(cert_id: str, *, force: bool = False) -> str:
        """Renew a certificate."""
        return cert_id

    wrapped = certobs.renewal(renew)
    assert inspect.signature(wrapped) == inspect.signature(renew)
    assert wrapped.__name__ == "renew"
    assert wrapped.__doc__ == "Renew a certificate."
    assert wrapped.__wrapped__ is renew
    assert inspect.signature(Service("x").issue).parameters.keys() == {"cert_id", "issuer"}


def test_generators_refused_at_decoration():
    """Generator and async generator functions are refused with a TypeError naming them."""

    def gen():
        yield 1

    async def agen():
        yield 1

    with pytest.raises(TypeError, match="generator function 'test_generators_refused"):
        certobs.renewal(gen)
    with pytest.raises(TypeError, match="generator"):
        certobs.deployment(target_type="x")(agen)


def test_bad_decoration_fails_fast():
    """Unknown mapped parameters and bad static values fail at decoration time."""

    def renew(cert_id):
        return cert_id

    with pytest.raises(
        certobs.ConfigurationError, match=r"no parameter 'serial' \(its parameters: cert_id\)"
    ):
        certobs.renewal(arg_attributes={"serial": a.CERTIFICATE_SERIAL_NUMBER})(renew)
    with pytest.raises(certobs.ConfigurationError, match="issuer: expected a non-empty string"):
        certobs.renewal(issuer=object())
    with pytest.raises(certobs.ConfigurationError, match="operation name"):
        certobs.operation("")
    with pytest.raises(TypeError, match="callable"):
        certobs.renewal(42)


def test_nothing_recorded_while_disabled(monkeypatch):
    """With no provider installed, calls run and certobs never touches an instrument."""
    from certobs import _runtime

    touched = []
    monkeypatch.setattr(_runtime, "instruments", lambda: touched.append(1))
    monkeypatch.setattr(_runtime, "tracer", lambda: touched.append(1))
    calls = []

    @certobs.renewal
    def renew(x):
        calls.append(x)
        return x

    assert not _runtime.recording()
    assert renew(1) == 1
    with certobs.deployment() as op:
        op.set_attribute(a.CERTIFICATE_ID, "x")
        assert certobs.current_operation() is op
    assert certobs.current_operation() is not op
    assert calls == [1]
    assert touched == []


def test_context_manager_handle_and_nesting(certobs_telemetry):
    """``with`` yields a handle; nested operations restore the outer one on exit."""
    outer = certobs.operation("ocsp.refresh")
    with outer as op1:
        assert certobs.current_operation() is op1
        with certobs.validation() as op2:
            assert certobs.current_operation() is op2
            op2.set_attribute(a.CERTIFICATE_ISSUER_NAME, "corp")
        assert certobs.current_operation() is op1
    assert certobs.current_operation() is not op1
    assert (
        certobs_telemetry.point(DURATION, {a.CERTIFICATE_OPERATION_NAME: "ocsp.refresh"}).count == 1
    )
    spans = {s.name: s for s in certobs_telemetry.spans()}
    assert (
        spans["certificate.validate"].parent.span_id
        == spans["certificate.ocsp.refresh"].context.span_id
    )


def test_context_manager_failure(certobs_telemetry):
    """An exception leaving a ``with`` block is recorded and not swallowed."""
    with pytest.raises(RenewalFailed), certobs.revocation():
        raise RenewalFailed
    assert (
        certobs_telemetry.point(
            DURATION,
            {a.CERTIFICATE_OPERATION_NAME: "revoke", a.ERROR_TYPE: f"{__name__}.RenewalFailed"},
        ).count
        == 1
    )


def test_async_context_manager(certobs_telemetry):
    """``async with`` works like ``with``."""

    async def main():
        async with certobs.deployment(target_type="k8s") as op:
            op.set_attribute(a.DEPLOYMENT_ENVIRONMENT_NAME, "stage")
            await asyncio.sleep(0.01)

    asyncio.run(main())
    point = certobs_telemetry.point(
        DURATION,
        {
            a.CERTIFICATE_OPERATION_NAME: "deploy",
            a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE: "k8s",
            a.DEPLOYMENT_ENVIRONMENT_NAME: "stage",
        },
    )
    assert point.sum >= 0.01


def test_bad_attribute_values_dropped_with_one_warning(caplog):
    """None and unsupported values are dropped with one warning per key, never raised."""
    with capture(strict=False) as telemetry, caplog.at_level(logging.WARNING, "certobs"):
        for _ in range(3):
            with certobs.renewal() as op:
                op.set_attribute(a.CERTIFICATE_ISSUER_NAME, None)
                op.set_attribute(a.CERTIFICATE_ID, {"not": "allowed"})
                op.set_attribute(a.DEPLOYMENT_ENVIRONMENT_NAME, "prod")
    warnings = [r.getMessage() for r in caplog.records]
    assert len([w for w in warnings if "certificate.issuer.name" in w]) == 1
    assert len([w for w in warnings if "certificate.id" in w]) == 1
    assert (
        telemetry.point(
            DURATION,
            {a.CERTIFICATE_OPERATION_NAME: "renew", a.DEPLOYMENT_ENVIRONMENT_NAME: "prod"},
        ).count
        == 3
    )


def test_internal_failure_swallowed_and_logged_once(monkeypatch, caplog):
    """A failure inside certobs never reaches user code; it is logged once; strict re-raises."""

    def broken():
        raise RuntimeError("exporter exploded")

    @certobs.renewal
    def renew(x):
        return x

    with capture(strict=False), caplog.at_level(logging.ERROR, "certobs"):
        monkeypatch.setattr(_aggregate.SumSeries, "add", lambda self, n: broken())
        assert [renew(i) for i in range(3)] == [0, 1, 2]
        with pytest.raises(RenewalFailed), certobs.renewal():
            raise RenewalFailed
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1  # starting failed, logged once; nothing was left to end
    assert certobs.current_operation() is certobs.current_operation()  # the no-op handle
    with capture(strict=True), pytest.raises(RuntimeError, match="exploded"):
        renew(1)


def test_user_exception_kept_when_certobs_fails(monkeypatch):
    """Even when recording fails, the user's exception is the one that propagates."""

    @certobs.renewal
    def renew():
        raise RenewalFailed("original")

    with capture(strict=False):
        monkeypatch.setattr(_aggregate.HistogramSeries, "record", lambda *a: 1 / 0)
        with pytest.raises(RenewalFailed, match="original"):
            renew()


def test_threads_get_their_own_timers(certobs_telemetry):
    """Concurrent calls from threads are all counted, each with its own timer and handle."""
    barrier = threading.Barrier(4)

    @certobs.renewal(issuer="le")
    def renew(i):
        barrier.wait(timeout=5)
        certobs.current_operation().set_attribute(a.CERTIFICATE_ID, str(i))
        return i

    threads = [threading.Thread(target=lambda i=i: [renew(i) for _ in range(50)]) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert (
        certobs_telemetry.point(
            DURATION, {a.CERTIFICATE_OPERATION_NAME: "renew", a.CERTIFICATE_ISSUER_NAME: "le"}
        ).count
        == 200
    )
    ids = sorted(s.attributes[a.CERTIFICATE_ID] for s in certobs_telemetry.spans())
    assert ids == sorted(str(i) for i in range(4) for _ in range(50))


def test_bundle_requests(certobs_telemetry):
    """record_bundle_request counts by bundle, format and error.type."""
    certobs.record_bundle_request("public-roots", format="pem")
    certobs.record_bundle_request("public-roots", format="pem")
    certobs.record_bundle_request("public-roots", format="der", error_type="NotFound")
    metric = certobs_telemetry.metrics()[CERTIFICATE_BUNDLE_REQUESTS]
    assert metric.unit == "{request}"
    assert (
        certobs_telemetry.point(
            CERTIFICATE_BUNDLE_REQUESTS,
            {a.CERTIFICATE_BUNDLE_NAME: "public-roots", a.CERTIFICATE_BUNDLE_FORMAT: "pem"},
        ).value
        == 2
    )
    assert (
        certobs_telemetry.point(
            CERTIFICATE_BUNDLE_REQUESTS,
            {
                a.CERTIFICATE_BUNDLE_NAME: "public-roots",
                a.CERTIFICATE_BUNDLE_FORMAT: "der",
                a.ERROR_TYPE: "NotFound",
            },
        ).value
        == 1
    )


def test_bundle_request_bad_name_dropped(caplog):
    """A bad bundle name is dropped with a warning, never raised."""
    with capture(strict=False) as telemetry, caplog.at_level(logging.WARNING, "certobs"):
        certobs.record_bundle_request(None)  # type: ignore[arg-type]
    assert telemetry.points(CERTIFICATE_BUNDLE_REQUESTS) == []
    assert "bundle name" in caplog.text


def test_strict_mode_is_restored():
    """capture() restores strict mode and the providers it replaced."""
    assert not _errors.is_strict()
    with capture():
        assert _errors.is_strict()
    assert not _errors.is_strict()


def test_duration_exemplar_links_to_span(certobs_telemetry):
    """The duration histogram carries an exemplar pointing at the operation's span."""

    @certobs.renewal
    def renew():
        return 1

    renew()
    (span,) = certobs_telemetry.spans()
    point = certobs_telemetry.point(DURATION, {a.CERTIFICATE_OPERATION_NAME: "renew"})
    assert [e.span_id for e in point.exemplars] == [span.context.span_id]
    assert point.exemplars[0].trace_id == span.context.trace_id


class Unprintable(Exception):
    def __str__(self):
        raise ValueError("no text for you")


def test_failure_inside_certobs_teardown_leaves_no_state(caplog):
    """If recording an exception fails, the span still ends and nothing stays current."""
    with capture(strict=False) as telemetry, caplog.at_level(logging.ERROR, "certobs"):

        @certobs.renewal
        def renew():
            raise Unprintable

        for _ in range(2):
            with pytest.raises(Unprintable):
                renew()
        assert certobs.current_operation() is not None
        assert certobs.current_operation().operation is None  # the no-op handle
        from opentelemetry import trace

        assert not trace.get_current_span().get_span_context().is_valid
        active = telemetry.point(
            CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: "renew"}
        )
        assert active.value == 0
        spans = telemetry.spans()
        assert len(spans) == 2
        assert all(s.status.status_code.name == "ERROR" for s in spans)
        point = telemetry.point(
            DURATION,
            {a.CERTIFICATE_OPERATION_NAME: "renew", a.ERROR_TYPE: f"{__name__}.Unprintable"},
        )
        assert point.count == 2


def test_failed_start_records_no_duration(monkeypatch):
    """When starting fails (a sampler raising, say), no bogus duration and no active leak."""
    from certobs import _runtime

    class BrokenTracer:
        def start_span(self, *args, **kwargs):
            raise RuntimeError("sampler bug")

    with capture(strict=False) as telemetry:
        monkeypatch.setattr(_runtime, "tracer", BrokenTracer)

        @certobs.renewal
        def renew():
            return "ok"

        assert renew() == "ok"
        with certobs.deployment():
            pass
        assert telemetry.points(DURATION) == []
        for name in ("renew", "deploy"):
            point = telemetry.point(
                CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: name}
            )
            assert point.value == 0
        assert certobs.current_operation().operation is None


def test_interleaved_generators_each_record(certobs_telemetry):
    """``with`` blocks suspended in generators that interleave are each recorded and closed."""

    def pipeline(target):
        with certobs.deployment(target_type=target):
            yield 1
            yield 2

    first, second = pipeline("nginx"), pipeline("f5")
    next(first)
    next(second)
    assert list(first) == [2]
    assert list(second) == [2]
    for target in ("nginx", "f5"):
        point = certobs_telemetry.point(
            DURATION,
            {a.CERTIFICATE_OPERATION_NAME: "deploy", a.CERTIFICATE_DEPLOYMENT_TARGET_TYPE: target},
        )
        assert point.count == 1
    active = certobs_telemetry.point(
        CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: "deploy"}
    )
    assert active.value == 0
    assert len(certobs_telemetry.spans()) == 2
    assert certobs.current_operation().operation is None


def test_async_generator_closed_early(certobs_telemetry):
    """Breaking out of an async generator that holds an ``async with`` still ends its span."""

    async def stream():
        async with certobs.bundle_build():
            for i in range(10):
                yield i

    async def main():
        async for i in stream():
            if i == 2:
                break

    asyncio.run(main())
    assert [s.name for s in certobs_telemetry.spans()] == ["certificate.bundle.build"]
    active = certobs_telemetry.point(
        CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: "bundle.build"}
    )
    assert active.value == 0


def test_argument_mapping_on_bound_method(certobs_telemetry):
    """Decorating an already-bound method maps arguments to the right attributes."""

    class Client:
        def renew(self, cert_id, force=False):
            return cert_id

    client = Client()
    client.renew = certobs.renewal(
        arg_attributes={"cert_id": a.CERTIFICATE_ID, "force": "acme.force"}
    )(client.renew)
    assert client.renew("api", True) == "api"
    (span,) = certobs_telemetry.spans()
    assert span.attributes[a.CERTIFICATE_ID] == "api"
    assert span.attributes["acme.force"] is True


def test_enum_values_recorded_as_their_values(certobs_telemetry):
    """Generated enum members are recorded as their plain values, never as 'Class.MEMBER'."""
    from certobs.semconv.attributes import CertificateBundleFormatValues, ErrorTypeValues

    certobs.record_bundle_request(
        "b", format=CertificateBundleFormatValues.DER, error_type=ErrorTypeValues.OTHER
    )
    with certobs.deployment(environment=CertificateBundleFormatValues.PEM) as op:
        op.set_attribute(a.CERTIFICATE_ISSUER_NAME, CertificateBundleFormatValues.JKS)
    (bundle,) = certobs_telemetry.points(CERTIFICATE_BUNDLE_REQUESTS)
    assert dict(bundle.attributes) == {
        a.CERTIFICATE_BUNDLE_NAME: "b",
        a.CERTIFICATE_BUNDLE_FORMAT: "der",
        a.ERROR_TYPE: "_OTHER",
    }
    (point,) = certobs_telemetry.points(DURATION)
    assert type(point.attributes[a.DEPLOYMENT_ENVIRONMENT_NAME]) is str
    assert point.attributes[a.CERTIFICATE_ISSUER_NAME] == "jks"


@certobs.issuance(issuer="corp")
def module_level_issue(x):
    """Issue, at module level so that it pickles by reference."""
    return x + 1


def test_decorated_functions_pickle_by_reference():
    """A decorated module-level function pickles (process pools); a local one says why not."""
    import pickle

    assert pickle.loads(pickle.dumps(module_level_issue)) is module_level_issue

    @certobs.issuance
    def local():
        return 1

    with pytest.raises(pickle.PicklingError, match="only functions defined at module"):
        pickle.dumps(local)


def test_dropped_values_are_never_logged(caplog):
    """A dropped attribute's value (possibly key material) never reaches the log."""
    secret = b"-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n-----END PRIVATE KEY-----\n"
    with (
        capture(strict=False),
        caplog.at_level(logging.DEBUG, "certobs"),
        certobs.issuance() as op,
    ):
        op.set_attribute("key", secret)  # type: ignore[arg-type]
    assert "dropped attribute 'key'" in caplog.text
    assert "PRIVATE KEY" not in caplog.text
    assert "MIGHAgEA" not in caplog.text


def test_active_balanced_when_provider_changes_mid_operation():
    """An operation ends on the provider it started on: no negative active count anywhere."""
    op = certobs.validation()
    with capture() as first:
        op.__enter__()
        with capture() as second:
            op.__exit__(None, None, None)
            assert second.points(CERTIFICATE_OPERATION_ACTIVE) == []
        point = first.point(
            CERTIFICATE_OPERATION_ACTIVE, {a.CERTIFICATE_OPERATION_NAME: "validate"}
        )
        assert point.value == 0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"issuer": ["a", "b"]}, "issuer: expected a non-empty string, got a list"),
        ({"environment": ""}, "environment: expected a non-empty string"),
        ({"attributes": {a.CERTIFICATE_ID: None}}, "attributes\\['certificate.id'\\]: expected"),
        ({"attributes": {"x": object()}}, "got a object"),
    ],
)
def test_static_attributes_validated(kwargs, message):
    """Static labels must be strings and static attributes valid values: fail at decoration."""
    with pytest.raises(certobs.ConfigurationError, match=message):
        certobs.renewal(**kwargs)


def test_attributes_set_from_child_contexts_reach_the_call():
    """On the fast path too, a task or thread started by the call can set its attributes."""

    @certobs.renewal
    async def renew():
        async def child():
            certobs.current_operation().set_attribute(a.CERTIFICATE_ISSUER_NAME, "from-task")

        await asyncio.create_task(child())

        def in_thread():
            op = certobs.current_operation()
            op.set_attribute(a.DEPLOYMENT_ENVIRONMENT_NAME, "from-thread")

        await asyncio.to_thread(in_thread)

    with capture(traces=False) as telemetry:
        asyncio.run(renew())
        point = telemetry.point(
            DURATION,
            {
                a.CERTIFICATE_OPERATION_NAME: "renew",
                a.CERTIFICATE_ISSUER_NAME: "from-task",
                a.DEPLOYMENT_ENVIRONMENT_NAME: "from-thread",
            },
        )
    assert point.count == 1


def test_handle_outlives_its_call_harmlessly():
    """A handle kept after its call ended records nothing more and raises nothing."""
    kept = []

    @certobs.renewal
    def renew():
        kept.append(certobs.current_operation())

    with capture(traces=False) as telemetry:
        renew()
        kept[0].set_attribute(a.CERTIFICATE_ISSUER_NAME, "late")
        points = telemetry.points(DURATION)
    assert [dict(p.attributes) for p in points] == [{a.CERTIFICATE_OPERATION_NAME: "renew"}]
    assert certobs.current_operation().operation is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("db.password", "hunter2"),
        ("acme.account_secret", "abc"),
        ("certificate.pem", "-----BEGIN CERTIFICATE-----\nMIIB...\n-----END CERTIFICATE-----"),
        ("key", "-----BEGIN EC PRIVATE KEY-----\nMHcC...\n-----END EC PRIVATE KEY-----"),
        ("chain", ["ok", "-----BEGIN CERTIFICATE-----\nMIIB"]),
    ],
)
def test_secrets_never_recorded(caplog, key, value):
    """Secrets, PEM bodies and key material are dropped with a warning that omits the value."""
    with (
        capture(strict=False) as telemetry,
        caplog.at_level(logging.WARNING, "certobs"),
        certobs.issuance() as op,
    ):
        op.set_attribute(key, value)
    (span,) = telemetry.spans()
    assert key not in span.attributes
    assert f"dropped attribute {key!r}" in caplog.text
    assert "never records secrets" in caplog.text
    assert "hunter2" not in caplog.text
    assert "MIIB" not in caplog.text
    assert "MHcC" not in caplog.text


def test_static_secret_refused():
    """A secret given as a static attribute fails at decoration, naming the attribute."""
    with pytest.raises(certobs.ConfigurationError, match="never records secrets"):
        certobs.renewal(attributes={"acme.password": "x"})


def test_set_certificate_with_private_key_records_only_the_certificate(caplog):
    """A PEM bundle holding the key too: the certificate is read, the key dropped, warned.

    No key material reaches the span or the log.
    """
    import trustme

    leaf = trustme.CA().issue_cert("key.example")
    bundle = leaf.private_key_and_cert_chain_pem.bytes()
    assert b"PRIVATE KEY" in bundle
    with (
        capture(strict=False) as telemetry,
        caplog.at_level(logging.WARNING, "certobs"),
        certobs.issuance() as op,
    ):
        op.set_certificate(bundle)
    (span,) = telemetry.spans()
    recorded = " ".join(str(v) for v in span.attributes.values())
    assert span.attributes["certificate.subject.alternative_names"] == ("key.example",)
    assert "PRIVATE KEY" not in recorded
    assert "-----BEGIN" not in recorded
    assert "the key is dropped and never recorded" in caplog.text
    assert "PRIVATE KEY-----" not in caplog.text
