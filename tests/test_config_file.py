"""`tally.toml` written from data (`pipelines.config_file`): every key the schema declares is
written and read back by `load_settings` as it was given; the sandbox's document carries its
URLs, keys, markets, clock and (scaled) pacing."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from pipelines.config import describe_settings, load_settings
from pipelines.config_file import config_document, config_text, read_config, write_config
from pipelines.config_schema import SECTIONS, TOP_LEVEL_KEYS, key_name
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox_config import SANDBOX_COMMENT, sandbox_document

NOW = datetime(2024, 3, 31, tzinfo=UTC)

# A value for every key of tally.toml, none of them its default.
EVERY_KEY: dict[str, Any] = {
    "data_dir": "lakehouse",
    "reporting_currency": "GBP",
    "now": "2024-03-31T12:30:00Z",
    "public_trades_days": 3,
    "rate_budget_dir": "budgets",
    "rate_budget_url": "postgresql://tally:pw-in-url@db.example:5433/budgets",
    "candles_reread_minutes": 45,
    "warehouse_memory_limit": "512MB",
    "lake_url": "s3://a-bucket/the/lake",
    "bitstamp": {
        "base_url": "http://127.0.0.1:9",
        "markets": ["BTC-EUR", "ETH-USD"],
        "intervals": ["1m", "1d"],
        "api_key": "bitstamp-key",
        "api_secret": "bitstamp-secret",
        "requests_per_window": 120,
        "window_seconds": 6.5,
        "max_requests_per_second": 7.5,
    },
    "bitvavo": {
        "base_url": "http://127.0.0.1:9/v2",
        "markets": ["ADA-EUR"],
        "intervals": ["5m"],
        "api_key": "bitvavo-key",
        "api_secret": "bitvavo-secret",
        "access_window_ms": 20_000,
    },
}
# The same with each key pair named as Prefect Secret blocks instead (a pair comes from one
# place: a file cannot have both).
EVERY_KEY_WITH_BLOCKS: dict[str, Any] = {
    **EVERY_KEY,
    **{
        section: {
            **{k: v for k, v in EVERY_KEY[section].items() if k not in ("api_key", "api_secret")},
            "api_key_block": f"{section}-key",
            "api_secret_block": f"{section}-secret",
        }
        for section in SECTIONS
    },
}


def test_the_document_names_every_key_of_the_schema() -> None:
    """So that a key added to the schema must be added to the round trip below."""
    assert {k for k in EVERY_KEY if k not in SECTIONS} == set(TOP_LEVEL_KEYS)
    for section, model in SECTIONS.items():
        both = set(EVERY_KEY[section]) | set(EVERY_KEY_WITH_BLOCKS[section])
        assert both == set(model.model_fields), section


def test_every_key_written_is_read_back_as_given(tmp_path: Path) -> None:
    path = write_config(tmp_path / "tally.toml", config_document(**EVERY_KEY))
    settings = load_settings(path, environ={})
    values = {row.key: row.value for row in describe_settings(settings)}
    sources = {row.key: row.source for row in describe_settings(settings)}
    assert values["data_dir"] == str(tmp_path / "lakehouse")
    assert values["rate_budget_dir"] == str(tmp_path / "budgets")
    assert values["rate_budget_url"] == "postgresql://tally:****@db.example:5433/budgets"
    assert settings.rate_budget_url is not None
    assert settings.rate_budget_url.reveal() == EVERY_KEY["rate_budget_url"]
    assert "pw-in-url" not in repr(settings)
    simple = ("reporting_currency", "now", "public_trades_days", "candles_reread_minutes")
    for name in (*simple, "warehouse_memory_limit", "lake_url"):
        assert values[name] == EVERY_KEY[name], name
    for section in SECTIONS:
        credentials = settings.exchange(section).load_credentials()
        assert credentials is not None
        assert credentials.key.reveal() == EVERY_KEY[section]["api_key"]
        assert credentials.secret.reveal() == EVERY_KEY[section]["api_secret"]
        for name, value in EVERY_KEY[section].items():
            key = key_name(section, name)
            assert sources[key] == f"file {path}", key
            if not name.startswith("api_"):
                assert values[key] == value, key
        for name in ("api_key_block", "api_secret_block"):
            assert values[key_name(section, name)] is None
    sources = {k: v for k, v in sources.items() if not k.endswith("_block")}
    assert set(sources.values()) == {f"file {path}"}, "a key kept its default"


def test_block_names_written_are_read_back_as_given(tmp_path: Path) -> None:
    """Not read from Prefect: `load_settings` only notes where each key pair is kept."""
    path = write_config(tmp_path / "tally.toml", config_document(**EVERY_KEY_WITH_BLOCKS))
    settings = load_settings(path, environ={})
    rows = {row.key: (row.value, row.source) for row in describe_settings(settings)}
    for section in SECTIONS:
        for half in ("key", "secret"):
            name = f"{section}-{half}"
            assert rows[key_name(section, f"api_{half}_block")] == (name, f"file {path}")
            value, source = rows[key_name(section, f"api_{half}")]
            assert source == f"Prefect Secret block {name!r}"
            assert "Prefect Secret block" in value


@pytest.mark.parametrize("document", [EVERY_KEY, EVERY_KEY_WITH_BLOCKS], ids=["keys", "blocks"])
def test_read_config_gives_back_the_document(tmp_path: Path, document: dict[str, Any]) -> None:
    path = write_config(tmp_path / "tally.toml", config_document(**document))
    assert read_config(path) == document


def test_none_leaves_a_key_out_and_a_misspelt_key_is_refused() -> None:
    assert config_document(data_dir="data", now=None) == {"data_dir": "data"}
    assert config_document(bitvavo={"markets": ["BTC-EUR"], "api_key": None}) == {
        "bitvavo": {"markets": ["BTC-EUR"]}
    }
    with pytest.raises(TypeError, match="reporting_curency"):
        config_document(reporting_curency="EUR")
    with pytest.raises(TypeError, match=r"\[bitvavo\] .* 'requests_per_window'"):
        config_document(bitvavo={"requests_per_window": 1})


def test_text_is_toml_after_its_comment_lines() -> None:
    text = config_text({"data_dir": 'a "quoted" \\ dir'}, comment="first\nsecond")
    assert text.startswith("# first\n# second\n")
    assert tomllib.loads(text) == {"data_dir": 'a "quoted" \\ dir'}


def test_a_config_is_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "tally.toml"
    write_config(path, {"data_dir": "one"})
    write_config(path, {"data_dir": "two"}, comment=SANDBOX_COMMENT)
    assert read_config(path) == {"data_dir": "two"}
    assert path.read_text().startswith(f"# {SANDBOX_COMMENT}\n")
    assert [p.name for p in tmp_path.iterdir()] == ["tally.toml"], "no temp file left"


# --- the sandbox's document ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def scaled() -> Iterator[Sandbox]:
    now_ms = int(NOW.timestamp() * 1000)
    with start_sandbox(seed=3, days=3, now_ms=now_ms, rate_scale=0.5) as running:
        yield running


def test_the_sandbox_document_points_at_the_sandbox(scaled: Sandbox, tmp_path: Path) -> None:
    document = sandbox_document(scaled)
    settings = load_settings(write_config(tmp_path / "tally.toml", document), environ={})
    assert settings.data_dir == tmp_path / "data"
    assert settings.now == NOW
    for name, served in scaled.info().items():
        exchange = settings.exchange(name)
        assert exchange.base_url == served["base_url"]
        credentials = exchange.load_credentials()
        assert credentials is not None
        assert credentials.key.reveal() == served["key"]
        assert credentials.secret.reveal() == served["secret"]
        listed = {f"{m.base}-{m.quote}" for (e, _), m in scaled.world.markets.items() if e == name}
        assert list(exchange.markets) == sorted(listed)
    # a scaled window: 4/5 of its budget, as the default takes 8,000 of the real 10,000
    limits = scaled.rate_limits
    assert document["bitstamp"]["requests_per_window"] == limits.bitstamp_budget * 4 // 5
    assert document["bitstamp"]["window_seconds"] == limits.bitstamp_window_ms / 1000
    assert "requests_per_window" not in document["bitvavo"]  # paced from its headers


def test_an_unscaled_sandbox_keeps_the_default_pacing_and_the_wall_clock() -> None:
    with start_sandbox(seed=3, days=3) as running:
        document = sandbox_document(running)
    assert "now" not in document
    for section in document.values():
        if isinstance(section, dict):
            assert "requests_per_window" not in section and "window_seconds" not in section
