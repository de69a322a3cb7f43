"""HTTPS: the daemon serves TLS with the configured certificate, and hostsmith's clients check it.

A self-signed certificate for 127.0.0.1 is made for the test (with
`cryptography`, which moto brings); the config names it as the daemon's
certificate and as the CA that `hostsmith hf` trusts.
"""

from __future__ import annotations

import datetime
import ipaddress
import pathlib
import ssl

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.daemon import Daemon, hf, hostsmith, write_config

TOKEN = "s3cret-token-for-the-test"


def self_signed(directory: pathlib.Path) -> tuple[pathlib.Path, pathlib.Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hostsmith test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.mark.slow
def test_the_daemon_serves_https_and_hf_checks_its_certificate(tmp_path: pathlib.Path) -> None:
    cert, key = self_signed(tmp_path)
    tls = f'[server]\ntoken = "{TOKEN}"\ntls_cert = "{cert}"\ntls_key = "{key}"\n'
    config = write_config(tmp_path, tls + f'tls_ca = "{cert}"\n')
    daemon = Daemon(config).start()
    try:
        assert daemon.url.startswith("https://127.0.0.1:")
        code, listed = hf("getAvailableTemplates", {}, url=daemon.url, config=config)
        assert code == 0, listed
        # no --url: the data dir's daemon is found, and reached over HTTPS
        code, listed_again = hf("getAvailableTemplates", {}, config=config)
        assert (code, listed_again) == (0, listed)
        # a client that does not trust the certificate is refused, and says why
        (tmp_path / "other").mkdir()
        untrusting = write_config(tmp_path / "other", f'[server]\ntoken = "{TOKEN}"\n')
        code, refused = hf("getAvailableTemplates", {}, url=daemon.url, config=untrusting)
        assert code == 1
        assert refused["message"].startswith(f"cannot reach the hostsmith daemon at {daemon.url}")
        assert "CERTIFICATE_VERIFY_FAILED" in refused["message"]
        # Prometheus scrapes /metrics over HTTPS with the bearer token
        trusted = ssl.create_default_context(cafile=str(cert))
        metrics = httpx.get(
            f"{daemon.url}/metrics", headers={"authorization": f"Bearer {TOKEN}"}, verify=trusted
        )
        assert metrics.status_code == 200
        assert "hostsmith_journal_events_total" in metrics.text
        assert httpx.get(f"{daemon.url}/metrics", verify=trusted).status_code == 401
    finally:
        assert daemon.stop() == 0


def test_half_a_tls_configuration_is_refused_at_start(tmp_path: pathlib.Path) -> None:
    cert, _ = self_signed(tmp_path)
    config = write_config(tmp_path, f'[server]\ntls_cert = "{cert}"\n')
    started = hostsmith("serve", "--config", str(config))
    assert started.returncode == 2
    assert started.stderr.strip() == (
        "error: set both server.tls_cert and server.tls_key for HTTPS, or neither"
    )
    (tmp_path / "missing").mkdir()
    missing = write_config(
        tmp_path / "missing",
        f'[server]\ntls_cert = "{cert}"\ntls_key = "{tmp_path / "nope.pem"}"\n',
    )
    started = hostsmith("serve", "--config", str(missing))
    assert started.returncode == 2
    assert f"server.tls_key {tmp_path / 'nope.pem'}: the file cannot be read" in started.stderr
