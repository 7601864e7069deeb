"""`pipelines.secret_refs`: a secret named by where it is kept, read from a real Prefect server
(the session's, `prefect_api`) only when resolved, once per object; every failure one line
naming the block and never a value."""

from __future__ import annotations

import pickle
import socket
from collections.abc import Iterator
from uuid import uuid4

import pytest
from prefect_api import PrefectApi

from pipelines.credentials import CredentialsRef, Secret
from pipelines.exit_codes import ExitCode
from pipelines.secret_refs import PrefectSecretBlock, SecretUnavailable

VALUE = "Kq7vX2mZ9pLw4RtY"  # what the blocks below hold; never in a message or a repr


def fragments(secret: str, size: int = 4) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_hidden(text: str, secret: str = VALUE) -> None:
    for fragment in fragments(secret):
        assert fragment not in text, f"{fragment!r} of the secret shown in {text!r}"


def save(name: str, value: str | dict[str, str]) -> None:
    from prefect.blocks.system import Secret as SecretBlock

    SecretBlock(value=value).save(name, overwrite=True)  # type: ignore[arg-type]


@pytest.fixture
def name(prefect_api: PrefectApi) -> str:
    """A block name no other test of the session uses (the server is shared)."""
    return f"test-{uuid4().hex[:12]}"


def test_a_block_is_read_when_resolved_and_once(name: str) -> None:
    ref = PrefectSecretBlock(name)
    save(name, VALUE)  # after the ref was made: nothing is read before `resolve`
    first = ref.resolve()
    assert isinstance(first, Secret) and first.reveal() == VALUE
    save(name, VALUE + "x")
    assert ref.resolve() is first, "read again"
    assert PrefectSecretBlock(name).resolve().reveal() == VALUE + "x"


def test_text_that_reads_as_json_is_kept_as_text(name: str) -> None:
    """`Secret.get()` would give the number 123456789 for this key."""
    save(name, "0123456789")
    assert PrefectSecretBlock(name).resolve().reveal() == "0123456789"


def test_a_missing_block_names_the_block_and_is_tried_again(
    name: str, prefect_api: PrefectApi
) -> None:
    ref = PrefectSecretBlock(name)
    with pytest.raises(SecretUnavailable) as raised:
        ref.resolve()
    (line,) = raised.value.lines
    assert line == f"Prefect Secret block {name!r} cannot be loaded: not found at {prefect_api.url}"
    assert raised.value.exit_code == ExitCode.EXCHANGE
    save(name, VALUE)
    assert ref.resolve().reveal() == VALUE


def test_a_block_holding_a_json_object_is_refused_without_its_value(name: str) -> None:
    save(name, {"key": VALUE, "secret": VALUE})
    with pytest.raises(SecretUnavailable) as raised:
        PrefectSecretBlock(name).resolve()
    assert str(raised.value) == (
        f"Prefect Secret block {name!r} cannot be loaded: it holds a JSON object, not text"
    )


def test_no_prefect_api_configured_is_told_without_asking(prefect_api: PrefectApi) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(restore_defaults={PREFECT_API_URL}),
        pytest.raises(SecretUnavailable) as raised,
    ):
        PrefectSecretBlock("somewhere").resolve()
    assert str(raised.value) == (
        "Prefect Secret block 'somewhere' cannot be loaded: no Prefect API is configured "
        "(set PREFECT_API_URL to the server that holds it)"
    )


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port nothing listens on (bound, never listening: refused at once)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_an_api_that_does_not_answer_is_told_naming_the_block(
    prefect_api: PrefectApi, closed_port: int
) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    url = f"http://127.0.0.1:{closed_port}/api"
    with (
        temporary_settings(updates={PREFECT_API_URL: url}),
        pytest.raises(SecretUnavailable) as raised,
    ):
        PrefectSecretBlock("far-away").resolve()
    line = str(raised.value)
    assert line.startswith(
        f"Prefect Secret block 'far-away' cannot be loaded: the Prefect API at {url} does not "
        "answer (ConnectError"
    ), line


def test_the_api_url_is_shown_without_its_password(prefect_api: PrefectApi) -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with (
        temporary_settings(updates={PREFECT_API_URL: "http://me:hunter2@127.0.0.1:9/api"}),
        pytest.raises(SecretUnavailable) as raised,
    ):
        PrefectSecretBlock("far-away").resolve()
    assert "http://127.0.0.1:9/api" in str(raised.value)
    assert "hunter2" not in str(raised.value) and "me:" not in str(raised.value)


def test_a_pair_names_every_block_it_cannot_read(name: str) -> None:
    save(f"{name}-key", VALUE)
    pair = CredentialsRef(PrefectSecretBlock(f"{name}-key"), PrefectSecretBlock(f"{name}-secret"))
    with pytest.raises(SecretUnavailable) as raised:
        pair.resolve()
    (line,) = raised.value.lines
    assert line.startswith(f"Prefect Secret block '{name}-secret' cannot be loaded: not found")
    assert_hidden(str(raised.value))
    save(f"{name}-secret", f"{VALUE} x")  # a pasted line with a space
    with pytest.raises(SecretUnavailable, match="spaces or line breaks") as raised:
        pair.resolve()
    assert_hidden(str(raised.value))


def test_a_pair_resolves_to_credentials_named_by_the_key_alone(name: str) -> None:
    save(f"{name}-key", VALUE)
    save(f"{name}-secret", VALUE[::-1])
    pair = CredentialsRef(PrefectSecretBlock(f"{name}-key"), PrefectSecretBlock(f"{name}-secret"))
    credentials = pair.resolve()
    assert (credentials.key.reveal(), credentials.secret.reveal()) == (VALUE, VALUE[::-1])
    from pipelines.credentials import Credentials

    at_hand = Credentials.from_strings(VALUE, "another secret")
    assert credentials.fingerprint == at_hand.fingerprint
    assert at_hand.resolve() is at_hand


def test_refs_show_and_pickle_names_only(name: str) -> None:
    save(f"{name}-key", VALUE)
    save(f"{name}-secret", VALUE)
    pair = CredentialsRef(PrefectSecretBlock(f"{name}-key"), PrefectSecretBlock(f"{name}-secret"))
    pair.resolve()  # read: the values are held now
    shown = f"{pair!r} {pair.key!r} {pair.where}"
    assert f"PrefectSecretBlock(\"Prefect Secret block '{name}-key'\")" in shown
    assert_hidden(shown)
    copied = pickle.loads(pickle.dumps(pair))
    assert copied == pair and hash(copied) == hash(pair)
    assert VALUE.encode() not in pickle.dumps(pair)
    assert copied.resolve().key.reveal() == VALUE  # read again where it is unpickled
