"""One adapter per exchange, found through one registry: each declares every part, the stream
table runs exactly the account streams they declare, every dataset the flows land belongs to a
declared stream, the declared walks fetch from the sandbox over real HTTP, and no module outside
`pipelines/exchanges/` (and the independent sandbox) names an exchange in its code."""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from code_scan import body, code_strings
from sandbox_runtime import sandbox_runtime

from pipelines.cli import build_parser
from pipelines.config import ExchangeSettings, load_settings
from pipelines.config_schema import SECTIONS
from pipelines.credentials import Credentials
from pipelines.datasets import ALL
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS
from pipelines.exchanges.ingestion import Connection, HistoryTrades, Ingestion, RollingTrades
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.registry import EXCHANGES, UnknownExchangeError, get, names
from pipelines.flows.account_streams import ACCOUNT_STREAMS
from pipelines.flows.runtime import Runtime
from pipelines.http import DEFAULT_RETRY, RequestBudget, WeightBudget
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.world import World

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / "pipelines"
NOW = datetime(2024, 3, 31, 12, tzinfo=UTC)
ADAPTERS = list(EXCHANGES.values())
BY_NAME = [pytest.param(adapter, id=adapter.name) for adapter in ADAPTERS]

# Where an exchange's name may appear in code: its adapters and clients, and the sandbox (the
# other side of the wire, which imports nothing of tally's).
ALLOWED = ("pipelines/exchanges/", "pipelines/sandbox/")


# --- the registry ------------------------------------------------------------------------------


def test_the_registry_lists_every_adapter_once_by_its_name() -> None:
    assert names() == tuple(adapter.name for adapter in ADAPTERS)
    assert len(set(names())) == len(ADAPTERS) >= 2
    for adapter in ADAPTERS:
        assert get(adapter.name) is adapter
    with pytest.raises(UnknownExchangeError, match="no exchange is called 'kraken'"):
        get("kraken")
    with pytest.raises(ValueError, match="no exchange is called 'kraken'"):
        get("kraken")  # as the name checks it replaced raised


@pytest.mark.parametrize("adapter", BY_NAME)
def test_every_adapter_declares_every_part(adapter: Exchange) -> None:
    ingestion = adapter.ingestion
    assert isinstance(ingestion, Ingestion)
    for part in dataclasses.fields(Ingestion):
        assert getattr(ingestion, part.name) is not None, part.name
    for call in ("client", "budget", "symbol_kind"):
        assert callable(getattr(ingestion, call)), call
    assert callable(ingestion.candles.walk)
    assert isinstance(ingestion.candles.fills_empty_intervals, bool)
    served = ingestion.public_trades
    assert isinstance(served, HistoryTrades | RollingTrades)
    if isinstance(served, HistoryTrades):
        assert callable(served.walk) and served.first_span > timedelta(0)
    else:
        assert callable(served.poll) and served.lost
        seconds = list(served.windows.values())
        assert seconds == sorted(seconds) and seconds[0] > 0  # shortest first
    assert re.fullmatch(r"GET /\S+", ingestion.market_list)
    section = ingestion.config
    assert set(section.default_intervals) <= set(section.intervals)
    assert section.base_url.startswith("https://")
    assert ingestion.account_streams(), "an exchange offers account streams"
    assert {s.name for s in ingestion.streams} >= {"candles", "public_trades"}


def test_only_the_exchanges_with_a_rolling_window_lose_public_trades() -> None:
    rolling = [a.name for a in ADAPTERS if isinstance(a.ingestion.public_trades, RollingTrades)]
    filling = [a.name for a in ADAPTERS if a.ingestion.candles.fills_empty_intervals]
    # as EXCHANGES.md tells: Bitstamp's public trades are a rolling window and its OHLC fills
    # empty intervals; Bitvavo serves the trades' history and leaves empty intervals out
    assert rolling == ["bitstamp"] == filling


# --- configuration -----------------------------------------------------------------------------


def test_each_adapter_declares_its_config_section() -> None:
    assert list(SECTIONS) == list(names())
    for adapter in ADAPTERS:
        model = SECTIONS[adapter.name]
        declared = adapter.ingestion.config
        fields = list(model.model_fields)
        own = [option.name for option in declared.options]
        common = ["base_url", "markets", "intervals", "api_key", "api_secret"]
        assert fields == [*common, "api_key_block", "api_secret_block", *own]
        defaults = model().model_dump()
        assert defaults["base_url"] == declared.base_url
        assert tuple(defaults["markets"]) == declared.markets
        for option in declared.options:
            assert defaults[option.name] == option.default


def test_exchange_settings_are_one_shape_with_the_adapters_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no tally.toml here: the built-in defaults
    settings = load_settings(environ={})
    for adapter in ADAPTERS:
        current = settings.exchange(adapter.name)
        assert isinstance(current, ExchangeSettings)
        options = {option.name: option.default for option in adapter.ingestion.config.options}
        assert current.options._asdict() == options
        assert type(current.options) is adapter.ingestion.config.shape
        for name, value in options.items():
            assert getattr(current.options, name) == value
        with pytest.raises(AttributeError, match="no_such_option"):
            _ = current.options.no_such_option
    made = ExchangeSettings("bitvavo", "http://127.0.0.1:1", (), (), access_window_ms=100)
    assert (
        made.options.access_window_ms == 100 and made.options._asdict()["access_window_ms"] == 100
    )
    moved = dataclasses.replace(made, markets=("BTC-EUR",))
    assert moved.markets == ("BTC-EUR",) and moved.options == made.options


@pytest.mark.parametrize("adapter", BY_NAME)
def test_exchange_settings_pickle_and_hash(adapter: Exchange) -> None:
    """Settings cross process boundaries and key caches. A key pair is never pickled (a
    `Secret` refuses it), but a section with one hashes."""
    config = ExchangeSettings(adapter.name, "http://127.0.0.1:1", ("BTC-EUR",), ("1h",))
    again = pickle.loads(pickle.dumps(config))
    assert again == config and again.options == config.options
    assert type(again.options) is adapter.ingestion.config.shape
    assert hash(again) == hash(config)
    assert {config: 1}[again] == 1
    other = dataclasses.replace(config, markets=("ETH-EUR",))
    assert other != config and len({config, other}) == 2
    keyed = dataclasses.replace(config, credentials=Credentials.from_strings("key", "secret"))
    assert hash(keyed) == hash(dataclasses.replace(keyed)) and keyed != config


def test_the_command_line_offers_the_registered_exchanges() -> None:
    parser = build_parser()
    for name in names():
        assert parser.parse_args(["sync", "--exchange", name]).exchange == [name]
        assert parser.parse_args(["doctor", "--exchange", name]).exchange == [name]
    with pytest.raises(SystemExit):
        parser.parse_args(["sync", "--exchange", "kraken"])


# --- streams -----------------------------------------------------------------------------------


def test_the_stream_table_runs_exactly_the_declared_account_streams() -> None:
    declared = [s.name for a in ADAPTERS for s in a.ingestion.account_streams()]
    assert len(declared) == len(set(declared)), "a stream name belongs to one exchange"
    assert sorted(declared) == sorted(ACCOUNT_STREAMS)


def test_the_declared_streams_cover_every_dataset_the_flows_land() -> None:
    landed = {d for a in ADAPTERS for s in a.ingestion.streams for d in (s.dataset, *s.also)}
    assert landed == set(ALL)
    for adapter in ADAPTERS:
        for stream in adapter.ingestion.streams:
            dataset = ALL[stream.dataset].dataset
            assert stream.key == dataset.key, stream.name
            assert stream.cursor is None or stream.cursor in dataset.schema, stream.name
            assert stream.scope == "account" or not stream.needs_keys, stream.name
        ledger = adapter.ingestion.ledger
        assert ledger.dataset in {s.dataset for s in adapter.ingestion.account_streams()}
        assert "executed_at" in ALL[ledger.dataset].dataset.schema
        assert "exchange" not in ALL[ledger.dataset].dataset.schema  # the dataset names it


# --- the declared parts, over real HTTP ------------------------------------------------------


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    world = World(seed=31, days=3, now_ms=int(NOW.timestamp() * 1000))
    with start_sandbox(seed=31, world=world) as running:
        yield running


@pytest.fixture
def runtime(sandbox: Sandbox, tmp_path: Path) -> Iterator[Runtime]:
    with closing(sandbox_runtime(sandbox, tmp_path, now=NOW)) as rt:
        yield rt


@pytest.mark.parametrize("adapter", BY_NAME)
def test_the_declared_walks_fetch_from_the_sandbox(adapter: Exchange, runtime: Runtime) -> None:
    ingestion = adapter.ingestion
    client = runtime.client(adapter.name)
    assert runtime.client(adapter.name) is client  # one client per exchange and runtime
    market = runtime.settings.exchange(adapter.name).markets[0]
    listed = {info.market: ingestion.symbol_kind(info.symbol) for info in client.markets()}
    assert listed[market] == "SPOT"

    end = NOW.replace(minute=0) - timedelta(hours=1)
    start = end - timedelta(hours=6)
    pages = list(ingestion.candles.walk(client, market, "1h", start, end))
    candles = [c for page in pages for c in page.records]
    assert candles and all(start <= c.open_time < end for c in candles)
    assert all(c.exchange == adapter.name and c.market == market for c in candles)

    served = ingestion.public_trades
    if isinstance(served, HistoryTrades):
        trades = [t for page in served.walk(client, market, start, end) for t in page.records]
        since, until = start, end
    else:
        window, seconds = list(served.windows.items())[-1]  # the longest
        trades = list(served.poll(client, market, window).records)
        since, until = NOW - timedelta(seconds=seconds), NOW
    assert trades and all(since <= t.traded_at <= until for t in trades)
    assert all(t.exchange == adapter.name and t.market == market for t in trades)
    assert client.http.stats.requests >= 3  # markets, candles, trades: over the wire


@pytest.mark.parametrize("adapter", BY_NAME)
def test_the_declared_client_and_budget_are_made_from_the_settings(
    adapter: Exchange, tmp_path: Path
) -> None:
    config = ExchangeSettings(adapter.name, "http://127.0.0.1:9", ("BTC-EUR",), ("1h",))
    budget = adapter.ingestion.budget(config, tmp_path / f"{adapter.name}.budget")
    assert budget is adapter.ingestion.budget(config, tmp_path / f"{adapter.name}.budget")
    local = (
        RequestBudget(*BITSTAMP_PACING)
        if adapter.name == "bitstamp"
        else WeightBudget(headers=WEIGHT_HEADERS)
    )
    how = Connection(None, "main", local, DEFAULT_RETRY, (1.0, 1.0))
    client = adapter.ingestion.client(config, how)
    with closing(client):
        assert client.limiter is local
        assert client.account == "main"
        assert client.http.base_url == "http://127.0.0.1:9"


# --- nothing else names an exchange -------------------------------------------------------------


def _names_an_exchange(path: Path, root: Path = REPO) -> list[str]:
    """Each string literal of `path`'s code whose text is an exchange's name, in any case:
    `"bitstamp"`, `f'Bitvavo'`."""
    relative = path.relative_to(root).as_posix()
    return [
        f"{relative}:{line}: {text}"
        for line, text in code_strings(path.read_text("utf-8"))
        if body(text).strip().lower() in names()
    ]


def test_no_module_outside_the_exchanges_names_an_exchange_in_its_code() -> None:
    found = []
    for path in sorted(PIPELINES.rglob("*.py")):
        if not path.relative_to(REPO).as_posix().startswith(ALLOWED):
            found += _names_an_exchange(path)
    assert found == []


def test_the_name_check_sees_code_and_skips_docstrings_and_comments(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        '"""About bitstamp."""\n\n'
        "def f(x):\n"
        '    """bitvavo, told."""\n'
        "    # bitstamp in a comment\n"
        '    return x == "bitstamp" or x in {\'bitvavo\': 1} or f"{x} bitvavo"\n'
        "\n"
        "CLIENTS = {\n"
        '    "bitstamp": 1,  # a string opening a line inside brackets is code\n'
        "}\n",
        encoding="utf-8",
    )
    strings = [text for _, text in code_strings(module.read_text())]
    assert strings == ['"bitstamp"', "'bitvavo'", 'f"{x} bitvavo"', '"bitstamp"']
    assert _names_an_exchange(module, tmp_path) == [
        'module.py:6: "bitstamp"',
        "module.py:6: 'bitvavo'",
        'module.py:9: "bitstamp"',
    ]


def test_the_name_check_ignores_case_and_names_that_only_contain_one(tmp_path: Path) -> None:
    module = tmp_path / "module.py"
    module.write_text(
        "def f(x):\n    return f'Bitvavo', 'bitstamp-perps', \"Bitstamp: Settings\", r'BITSTAMP'\n",
        encoding="utf-8",
    )
    assert _names_an_exchange(module, tmp_path) == [
        "module.py:2: f'Bitvavo'",
        "module.py:2: r'BITSTAMP'",
    ]
