"""How tally syncs from one exchange, declared: `Exchange.ingestion`.

One `Ingestion` per adapter says everything the configuration, the runtime, the flows, status
and the quarantine need to know of an exchange, as data and small functions, in the manner of
the Singer SDK's streams (declared by attributes: name, key, replication key) and of its
`config_jsonschema` (a tap's settings declared as a list of typed properties):

- `config`: its `[name]` section of tally.toml (`pipelines.config_schema` builds the model);
- `client`, `budget`: how a client and the rate budget shared by processes are made;
- `market_list`, `symbol_kind`: where its markets are listed and what a listed symbol is;
- `candles`, `public_trades`: the walks the market-data flows drive, and their rules;
- `streams`, `ledger`: the streams it offers, and which dataset holds its raw ledger.

Nothing here imports a client, pydantic or polars: the registry stays cheap to import
(`tally --help` lists the exchanges). Client classes are imported inside the factories.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, Protocol, TypedDict

from pipelines.exchanges.client import ClientT

if TYPE_CHECKING:
    from pipelines.config import ExchangeSettings
    from pipelines.credentials import Credentials
    from pipelines.exchanges.paging import Page
    from pipelines.exchanges.records import Candle, PublicTrade
    from pipelines.http import BudgetPlace, Limiter, RetryPolicy


# --- configuration ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    """A key of the exchange's own in its section (beside the keys every section has)."""

    name: str
    type: type  # int, float, str or bool: validated strictly
    default: Any
    meaning: str
    allowed: str  # what the messages and `tally config` say it takes
    bounds: Mapping[str, float] = field(default_factory=dict)  # pydantic's ge, gt, le, lt


class Options(Protocol):
    """An exchange's options as `ExchangeSettings.options` holds them: a `NamedTuple` (typed
    fields, hashable, picklable)."""

    def _asdict(self) -> dict[str, Any]: ...


class NoOptions(NamedTuple):
    """The options of an exchange that has no keys of its own."""


@dataclass(frozen=True)
class ConfigSection:
    """The exchange's `[name]` section: the defaults of the keys every section has (`base_url`,
    `markets`, `intervals`, `api_key`, `api_secret`) and the options of its own: `options`
    describe them (for the configuration's model, messages and `tally config`), `shape` is the
    typed tuple `ExchangeSettings.options` holds them in, with the same names and defaults."""

    base_url: str
    markets: tuple[str, ...]
    markets_meaning: str
    intervals: tuple[str, ...]  # the candle intervals the exchange serves
    default_intervals: tuple[str, ...]
    options: tuple[Option, ...] = ()
    shape: Callable[..., Options] = NoOptions  # a NamedTuple class, one field per option

    def __post_init__(self) -> None:
        described = {option.name: option.default for option in self.options}
        defaults = self.shape()._asdict()
        if described != defaults:
            raise ValueError(f"options {described} and their shape {defaults} differ")


# --- clients and budgets ----------------------------------------------------------------------


@dataclass(frozen=True)
class Connection:
    """What a client is made with besides its exchange's settings."""

    credentials: Credentials | None
    account: str
    limiter: Limiter
    retry: RetryPolicy
    timeout: tuple[float, float]  # (connect, read) seconds

    def options(self) -> ClientOptions:
        """The keyword arguments every client's constructor takes from the connection."""
        return ClientOptions(
            account=self.account, limiter=self.limiter, retry=self.retry, timeout=self.timeout
        )


class ClientOptions(TypedDict):
    account: str
    limiter: Limiter
    retry: RetryPolicy
    timeout: tuple[float, float]


ClientFactory = Callable[["ExchangeSettings", Connection], ClientT]
"""`(settings, connection) → a client of the exchange`."""

BudgetFactory = Callable[["ExchangeSettings", "BudgetPlace"], "Limiter"]
"""`(settings, budget file or PostgreSQL row) → the limiter every process using it shares`."""


# --- market data ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candles(Generic[ClientT]):
    """The candle walk and the exchange's rule for intervals without trades."""

    walk: Callable[[ClientT, str, str, datetime, datetime], Iterator[Page[Candle]]]
    """`(client, market, interval, start, end) → pages` of every candle opened in [start, end)."""
    fills_empty_intervals: bool  # a zero-volume candle for an interval without trades
    page_limit: int  # the most candles a page holds: a walk over a multiple of it fills them


@dataclass(frozen=True)
class HistoryTrades(Generic[ClientT]):
    """Public trades with their full history, walked backwards over a range of any length."""

    walk: Callable[[ClientT, str, datetime, datetime], Iterator[Page[PublicTrade]]]
    """`(client, market, start, end) → pages` of every trade in [start, end), newest first
    (any length: the client keeps each request within what the exchange accepts)."""
    read_after: Callable[[Page[PublicTrade]], datetime | None]
    """`(page of walk) → the moment after which every trade of the walk has been yielded` once
    that page is (None: the page does not tell), so that a day can land before the walk ends."""
    first_span: timedelta  # how far back a first sync reaches when not told


@dataclass(frozen=True)
class RollingTrades(Generic[ClientT]):
    """Public trades of a rolling window only: polled, never backfilled; gaps are recorded."""

    poll: Callable[[ClientT, str, str], Page[PublicTrade]]
    """`(client, market, window name) → the trades of that window`."""
    windows: Mapping[str, int]  # window name → seconds, shortest first
    lost: str  # what a quarantined file of them costs (the quarantine's note)


# --- streams ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """A stream the exchange offers. Account streams are run by `pipelines.flows`, found by
    `name` in its stream table; market streams by the `candles`/`public_trades` walks."""

    name: str
    dataset: str  # the lake dataset its rows land in
    cursor: str | None  # the replication key a sync resumes from; None: read whole each run
    scope: Literal["market", "account"]
    needs_keys: bool  # whether it sends signed requests (an API key pair)
    also: tuple[str, ...] = ()  # the other datasets it lands (rows derived from it, snapshots)

    @property
    def key(self) -> tuple[str, ...]:
        """Its dataset's key, as the lake defines it (imported when asked: polars is heavy)."""
        from pipelines.lake_datasets import ALL

        return ALL[self.dataset].key


CANDLES = Stream(
    "candles",
    "candles",
    "open_time",
    "market",
    False,
)
PUBLIC_TRADES = Stream(
    "public_trades",
    "public_trades",
    "traded_at",
    "market",
    False,
)
"""The market-data streams every exchange offers (walked by `candles` and `public_trades`)."""


@dataclass(frozen=True)
class Ledger:
    """The dataset holding the account's ledger as the exchange sends it: its earliest row is
    where the account begins, and `tally status` shows it as `{label} {exchange}`."""

    dataset: str
    label: str


@dataclass(frozen=True)
class Ingestion(Generic[ClientT]):
    """Everything tally's ingestion needs to know of one exchange (see the module docstring)."""

    config: ConfigSection
    client: ClientFactory[ClientT]
    budget: BudgetFactory
    market_list: str  # the request that lists the markets ("GET /v2/markets")
    symbol_kind: Callable[[str], str]  # the market type a listed symbol's spelling implies
    candles: Candles[ClientT]
    public_trades: HistoryTrades[ClientT] | RollingTrades[ClientT]
    streams: tuple[Stream, ...]
    ledger: Ledger

    def account_streams(self) -> tuple[Stream, ...]:
        """The account streams, in the order a sync runs them."""
        return tuple(stream for stream in self.streams if stream.scope == "account")


def spot(symbol: str) -> str:
    """`symbol_kind` of an exchange whose symbols carry no market type."""
    return "SPOT"
