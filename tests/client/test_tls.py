"""TLS: verified by default against a real HTTPS server, a certificate that cannot be verified
named at once (not retried as if the network had failed), and one TLS context per process."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pydantic import SecretStr

from omnisync.client import ConfigurationError, OmnitronClient
from tests.one_answer_server import serving


def self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that no CA signed, and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "omnitron.test")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _empty_page(method: str, path: str) -> tuple[int, str, bytes]:
    return 200, "application/json", b'{"count": 0, "next": null, "previous": null, "results": []}'


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """An HTTPS server on the loopback with a self-signed certificate: its URL and certificate."""
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with serving(_empty_page, tls=context) as url:
        yield url, cert


def client(url: str, **options: object) -> OmnitronClient:
    return OmnitronClient(
        url,
        token=SecretStr("t0ken"),
        retry_attempts=5,
        backoff_initial=0.01,
        **options,  # type: ignore[arg-type]
    )


def test_a_certificate_no_trusted_authority_signed_is_refused_at_once_and_named(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = https_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with client(url) as omnitron, pytest.raises(ConfigurationError) as raised:
        omnitron.get_json("/api/v1/customers/")
    said = str(raised.value)
    assert "certificate" in said and "SSL_CERT_FILE" in said, said
    assert "attempts" not in said, said  # one try: a certificate does not mend by waiting


def test_the_certificate_is_trusted_through_ssl_cert_file_or_verification_turned_off(
    https_server: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with client(url) as omnitron:
        assert omnitron.get_json("/api/v1/customers/")["count"] == 0
    monkeypatch.delenv("SSL_CERT_FILE")
    with client(url, verify_tls=False) as omnitron:
        assert omnitron.get_json("/api/v1/customers/")["count"] == 0


def test_clients_of_one_process_share_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building a context reads the whole CA bundle (tens of ms of CPU); a run makes a client per
    step and per window thread."""
    from omnisync.client.tls import tls_context

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    assert tls_context(True) is tls_context(True)
    assert tls_context(False) is tls_context(False) and tls_context(False) is not tls_context(True)
    assert tls_context(True).verify_mode == ssl.CERT_REQUIRED and tls_context(True).check_hostname
    assert tls_context(False).verify_mode == ssl.CERT_NONE


def test_the_command_line_names_the_certificate_in_one_line(
    https_server: tuple[str, Path], tmp_path: Path
) -> None:
    from tests.cli_runner import run_cli

    url, _ = https_server
    env = {
        "OMNITRON_URL": url,
        "OMNITRON_TOKEN": "t0ken",
        "OMNISYNC_LAKE": str(tmp_path / "lake"),
        "OMNISYNC_STATE_URL": f"sqlite:///{tmp_path}/state.db",
    }
    done = run_cli(env, "sync")
    said = done.stdout + done.stderr
    assert done.returncode == 2 and "Traceback" not in said, said
    assert "certificate cannot be verified" in said and "SSL_CERT_FILE" in said, said
    assert "t0ken" not in said


def test_a_certificate_error_is_found_anywhere_in_the_chain_with_advice_by_its_kind() -> None:
    from omnisync.client.tls import certificate_refused

    refused = ssl.SSLCertVerificationError("certificate verify failed")  # no verify_code
    outer = RuntimeError("connect failed")
    outer.__cause__ = OSError("wrapped")
    outer.__cause__.__context__ = refused
    said = certificate_refused(outer)
    assert said is not None and "certificate verify failed" in said and "SSL_CERT_FILE" in said
    elsewhere = ssl.SSLCertVerificationError("hostname mismatch")
    elsewhere.verify_code, elsewhere.verify_message = 62, "Hostname mismatch"
    said = certificate_refused(elsewhere)
    assert said is not None and "OMNITRON_URL" in said and "SSL_CERT_FILE" not in said
    first, second = ValueError("a"), ValueError("b")
    first.__cause__, second.__cause__ = second, first
    assert certificate_refused(first) is None


def test_the_shared_context_keeps_its_alpn_protocols_whoever_sets_them_again() -> None:
    """httpcore sets them before every connection: on a shared context only the first call may
    change it (a change frees a buffer another thread's handshake may be reading)."""
    from omnisync.client.tls import tls_context

    context = tls_context(True)
    calls: list[list[str]] = []
    original = ssl.SSLContext.set_alpn_protocols
    try:
        ssl.SSLContext.set_alpn_protocols = lambda self, p: calls.append(list(p))  # type: ignore[method-assign]
        context.set_alpn_protocols(["http/1.1"])
    finally:
        ssl.SSLContext.set_alpn_protocols = original  # type: ignore[method-assign]
    assert calls == [], "the same protocols again reached OpenSSL"


def test_a_login_to_a_server_that_never_answers_ends_at_the_client_s_timeout() -> None:
    """The login request is built inside the auth flow: it must carry the client's timeout too
    (it had none, so a TLS handshake nobody answered hung `omnisync sync` for good)."""
    import socket
    import threading

    from omnisync.client import OmnitronError

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    held: list[socket.socket] = []
    threading.Thread(
        target=lambda: [held.append(listener.accept()[0]) for _ in range(8)], daemon=True
    ).start()
    port = listener.getsockname()[1]
    outcome: list[BaseException] = []

    def sync_login() -> None:
        with OmnitronClient(
            f"https://127.0.0.1:{port}",
            username="sandbox",
            password=SecretStr("pw"),
            timeout_seconds=0.5,
            retry_attempts=1,
        ) as omnitron:
            try:
                omnitron.get_json("/api/v1/customers/")
            except OmnitronError as exc:
                outcome.append(exc)

    worker = threading.Thread(target=sync_login, daemon=True)
    worker.start()
    worker.join(120)  # far above 0.5 s: only a request without a timeout is still waiting
    listener.close()
    assert not worker.is_alive(), "the login waited on a server that never answers"
    assert outcome and "ConnectTimeout" in str(outcome[0]), outcome


def test_a_failed_connection_says_why_a_wrong_scheme_a_closed_port_or_an_unknown_host() -> None:
    """``failed to connect: ConnectError`` said the same for three mistakes a person fixes
    differently: https:// to a port that speaks plain HTTP, a port nothing listens on, and a
    host name that is not known."""
    import socket

    from omnisync.client import OmnitronError

    def said(url: str) -> str:
        with client(url) as omnitron, pytest.raises(OmnitronError) as raised:
            omnitron.get_json("/api/v1/customers/")
        return str(raised.value)

    with serving(_empty_page) as plain:  # plain HTTP: told at once, not retried
        wrong_scheme = said(plain.replace("http://", "https://"))
    assert "does not speak TLS" in wrong_scheme and "http://" in wrong_scheme, wrong_scheme
    assert "attempts" not in wrong_scheme, wrong_scheme
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: the port refuses
    try:
        refused = said(f"http://127.0.0.1:{closed.getsockname()[1]}")
    finally:
        closed.close()
    assert "connection refused" in refused and "OMNITRON_URL" in refused, refused
    unknown = said("http://no-such-host.invalid")  # "does not exist", or a resolver offline
    assert re.search("host name (does not exist|could not be resolved)", unknown), unknown
    assert "OMNITRON_URL" in unknown, unknown


@pytest.mark.parametrize(
    ("error", "preflight", "answered_before", "attempts"),
    [
        (socket.EAI_NONAME, True, False, 1),  # a mistyped OMNITRON_URL: said at once
        # Omnitron answered this client before: a passing fault, with the whole budget
        (socket.EAI_NONAME, True, True, 5),
        # a run's own client (a write-back's, a Dask worker's): the address was checked
        (socket.EAI_NONAME, False, False, 5),
        (socket.EAI_AGAIN, True, False, 3),  # the name server could not answer now
    ],
)
def test_a_host_name_that_does_not_exist_is_refused_at_once_only_by_a_preflight(
    error: int, preflight: bool, answered_before: bool, attempts: int
) -> None:
    """A mistyped host waited out the retries (3.8 s for ``omnisync sync``) before it was named;
    a name server's hiccup, a name that vanished after Omnitron answered, or one a run's own
    client meets (a review found a write-back stopped by one) is still retried."""
    import httpx

    from omnisync.client import ConfigurationError, OmnitronError, RetriesExhausted

    tries: list[int] = []

    def no_name(request: httpx.Request) -> httpx.Response:
        tries.append(1)
        try:
            raise socket.gaierror(error, "name lookup failed")
        except socket.gaierror as lookup:
            raise httpx.ConnectError("lookup failed", request=request) from lookup

    omnitron = client(
        "https://omnitron.test", backoff_jitter=0.0, transport=httpx.MockTransport(no_name)
    )
    if preflight:  # as omnisync.connection.reach makes it: 3 attempts until a first answer
        omnitron.first_answer_budget = (3, 10.0)
    omnitron.answered = answered_before
    expected: type[OmnitronError] = ConfigurationError if attempts == 1 else RetriesExhausted
    with omnitron, pytest.raises(expected, match="OMNITRON_URL"):
        omnitron.get_json("/api/v1/customers/")
    assert len(tries) == attempts  # this client's 5 attempts, or 3 until a preflight's answer


def test_each_retrying_line_is_followed_by_another_attempt(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The last failure of a request said "retrying" too, just before "gave up after N
    attempts": a reader counted one attempt more than there was."""
    import logging
    import socket

    from omnisync.client import OmnitronError

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        with client(f"http://127.0.0.1:{closed.getsockname()[1]}") as omnitron:
            omnitron.retry_attempts = 3
            with caplog.at_level(logging.WARNING), pytest.raises(OmnitronError) as raised:
                omnitron.get_json("/api/v1/customers/")
    finally:
        closed.close()
    assert "gave up after 3 attempts" in str(raised.value)
    assert sum("retrying" in r.getMessage() for r in caplog.records) == 2, caplog.text
