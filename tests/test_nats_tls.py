"""TLS to NATS: a server that requires TLS and verifies client certificates.

The certificates are made here (``trustme``: a throwaway CA, a server
certificate for 127.0.0.1 and localhost, a client certificate). The pipeline
runs over TLS end to end, a git event sent by ``gitstore-agents publish``
through to its validation results, and commands fail in one line naming what
to check when the certificate, its key or the CA is missing or wrong.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest
import trustme

from gitstore_agents.config import CATALOG_ENRICH, MARKDOWN_COMPILE, NatsSettings, Topology
from gitstore_agents.consumers import NatsUnreachableError, connect, provision
from gitstore_agents.embedded import NatsServer
from gitstore_agents.errors import ConfigError

from .runtime_support import make_event, running, runtime_config, validation_requests, wait_settled
from .support import eventually
from .test_cli_failures import assert_one_error_line, run_cli


class Certificates(msgspec.Struct, frozen=True):
    """PEM files of one throwaway PKI."""

    ca: Path
    server: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


@pytest.fixture
def certificates(tmp_path: Path) -> Certificates:
    """A CA, a server certificate (127.0.0.1, localhost), a client certificate, another CA."""
    ca = trustme.CA()
    folder = tmp_path / "pki"
    folder.mkdir()
    files = Certificates(
        ca=folder / "ca.pem",
        server=folder / "server.pem",
        client_cert=folder / "client.crt",
        client_key=folder / "client.key",
        other_ca=folder / "other-ca.pem",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    ca.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(files.server)
    )
    client = ca.issue_cert("gitstore-agents@example.com")
    client.cert_chain_pems[0].write_to_path(str(files.client_cert))
    client.private_key_pem.write_to_path(str(files.client_key))
    trustme.CA().cert_pem.write_to_path(str(files.other_ca))
    return files


@pytest.fixture
def tls_server(tmp_path: Path, certificates: Certificates) -> Iterator[NatsServer]:
    """A nats-server that accepts only TLS clients with a certificate its CA signed."""
    server = NatsServer(
        tmp_path / "nats",
        extra_config=(
            f'tls {{ cert_file: "{certificates.server}", key_file: "{certificates.server}", '
            f'ca_file: "{certificates.ca}", verify: true, timeout: 5 }}'
        ),
    ).start()
    try:
        yield server
    finally:
        server.stop()


def _tls(certificates: Certificates) -> dict[str, str]:
    return {
        "tls_ca_file": str(certificates.ca),
        "tls_cert_file": str(certificates.client_cert),
        "tls_key_file": str(certificates.client_key),
    }


def _tls_options(certificates: Certificates) -> list[str]:
    return [
        *("--tls-ca", str(certificates.ca)),
        *("--tls-cert", str(certificates.client_cert)),
        *("--tls-key", str(certificates.client_key)),
    ]


async def test_the_pipeline_runs_over_tls_with_client_certificates(
    tls_server: NatsServer, certificates: Certificates, topology: Topology, tmp_path: Path
) -> None:
    config = runtime_config(tls_server.url, topology, tmp_path)
    config = msgspec.structs.replace(
        config, nats=msgspec.structs.replace(config.nats, **_tls(certificates))
    )
    event = make_event(1)
    event_file = tmp_path / "event.json"
    event_file.write_bytes(msgspec.json.encode(event))
    config_file = tmp_path / "config.yaml"
    # The file names no TLS file: the command line's options must carry them.
    plain = msgspec.structs.replace(config, nats=NatsSettings(url=tls_server.url))
    config_file.write_bytes(msgspec.yaml.encode(msgspec.to_builtins(plain)))

    context = ssl.create_default_context(cafile=str(certificates.ca))
    context.load_cert_chain(str(certificates.client_cert), str(certificates.client_key))
    nc = await nats.connect(tls_server.url, tls=context)
    try:
        js = nc.jetstream()
        async with running(config) as runtime:
            assert runtime.nc.connected_url is not None
            assert runtime.nc._server_info["tls_required"] is True
            sent = run_cli(
                "publish",
                str(event_file),
                "--config",
                str(config_file),
                *_tls_options(certificates),
            )
            assert sent.code == 0, sent.stderr
            assert sent.stdout.startswith(f"stored: stream={topology.events_stream} seq=1 ")
            requests = await eventually(
                lambda: validation_requests(js, topology),
                lambda found: len(found) == 2,
                what="the event's compile and enrich results",
            )
            await wait_settled(js, config)
    finally:
        await nc.close()
    assert sorted(r.kind for r in requests) == sorted([MARKDOWN_COMPILE, CATALOG_ENRICH])
    assert {r.source_event_id for r in requests} == {event.event_id}


async def test_connect_names_what_to_check_when_tls_fails(
    tls_server: NatsServer, certificates: Certificates
) -> None:
    url = tls_server.url

    async def refused(**settings: str) -> str:
        with pytest.raises(NatsUnreachableError) as failed:
            await connect(NatsSettings(url=url, connect_timeout_s=5, **settings), name="t")
        return str(failed.value)

    # No client certificate: the server asks for one.
    message = await refused(tls_ca_file=str(certificates.ca))
    assert f"TLS with NATS at {url} failed (" in message
    assert "certificate required" in message
    assert "--tls-cert" in message
    # A CA that did not sign the server's certificate.
    message = await refused(**{**_tls(certificates), "tls_ca_file": str(certificates.other_ca)})
    assert "certificate verify failed" in message
    assert "--tls-ca" in message
    # A name the server's certificate does not hold.
    message = await refused(**_tls(certificates), tls_server_name="nats.example.com")
    assert "certificate verify failed" in message
    # The right files: connected, over TLS.
    nc = await connect(NatsSettings(url=url, **_tls(certificates)), name="t")
    try:
        assert nc._server_info["tls_required"] is True
    finally:
        await nc.close()


async def test_a_tls_configuration_refuses_a_server_without_tls(
    nats_url: str, certificates: Certificates
) -> None:
    with pytest.raises(NatsUnreachableError) as failed:
        await connect(NatsSettings(url=nats_url, **_tls(certificates)), name="t")
    assert "does not use TLS" in str(failed.value)


async def test_any_tls_option_alone_asks_for_tls(nats_url: str, tmp_path: Path) -> None:
    # A server name (or a key) without the other options: never the clear text.
    for option in ({"tls_server_name": "nats.example.com"}, {"tls_key_file": "k.pem"}):
        with pytest.raises((NatsUnreachableError, ConfigError)) as failed:
            await connect(NatsSettings(url=nats_url, **option), name="t")
        assert "TLS" in str(failed.value) or "tls_key_file" in str(failed.value), option
    # A directory where a CA file belongs is named as such, before connecting.
    with pytest.raises(ConfigError, match=f"nats.tls_ca_file {tmp_path}: a directory"):
        await connect(NatsSettings(url=nats_url, tls_ca_file=str(tmp_path)), name="t")


async def test_unreadable_tls_files_are_named_before_connecting(
    certificates: Certificates, tmp_path: Path
) -> None:
    missing = tmp_path / "missing.key"
    settings = NatsSettings(
        url="nats://127.0.0.1:1",
        tls_ca_file=str(certificates.ca),
        tls_cert_file=str(certificates.client_cert),
        tls_key_file=str(missing),
    )
    with pytest.raises(ConfigError, match=f"nats.tls_key_file {missing}: no such file"):
        await connect(settings, name="t")
    # A key that is not the certificate's.
    mismatched = msgspec.structs.replace(settings, tls_key_file=str(certificates.server))
    with pytest.raises(ConfigError, match="cannot be used"):
        await connect(mismatched, name="t")


def test_commands_fail_in_one_line_without_a_client_certificate(
    tls_server: NatsServer, certificates: Certificates, tmp_path: Path, topology: Topology
) -> None:
    config = tmp_path / "config.yaml"
    config.write_bytes(
        msgspec.yaml.encode(
            {"nats": {"url": tls_server.url}, "topology": msgspec.to_builtins(topology)}
        )
    )
    run = run_cli("dlq", "list", "--config", str(config), "--tls-ca", str(certificates.ca))
    assert run.code == 1
    assert_one_error_line(run, "TLS with NATS at", "certificate required", "--tls-cert")

    run = run_cli("provision", "--no-modules", "--config", str(config), *_tls_options(certificates))
    assert run.code == 0, run.stderr
    run = run_cli("dlq", "list", "--config", str(config), *_tls_options(certificates))
    assert (run.code, run.stdout.strip()) == (0, "no dead letters"), run.stderr


async def test_provisioning_over_tls_matches_a_plain_server(
    tls_server: NatsServer, certificates: Certificates, topology: Topology, tmp_path: Path
) -> None:
    # The worker's own connect (reconnects, inbox prefix) with TLS: provision, then read back.
    config = runtime_config(tls_server.url, topology, tmp_path)
    settings = msgspec.structs.replace(config.nats, **_tls(certificates))
    nc = await connect(settings, name="t")
    try:
        js = nc.jetstream()
        await provision(js, msgspec.structs.replace(config, nats=settings), upload_modules=False)
        names = {info.config.name for info in await js.streams_info()}
    finally:
        await nc.close()
    assert topology.events_stream in names
    assert topology.validation_stream in names
