"""Sandbox realities: the API behaviours that no recorded response or official document settles.

The sandbox plays each point docs/exchanges.md tags open one way at a time, so that the tests
can prove that tally's clients handle every plausible reality. `Variants()` is today's default
reading; `parse_variants(["bitvavo-history-ids=order", ...])` (`tally sandbox --variant
NAME=VALUE`) switches single points.

- `bitvavo-history-ids` = fill | own | order: an `/account/history` order-book buy/sell carries
  the fill's id, its own UUID (one item per fill), or its own UUID on one item per order that
  sums the order's fills.
- `bitstamp-crypto-limit` = per-list | combined: `crypto-transactions` `limit`/`offset` apply to
  each list, or to deposits + withdrawals together.
- `bitvavo-trades-span` = none | 24h: account `/v2/trades` refuses (errorCode 205) a
  `start`–`end` span over 24 h.
- `bitvavo-trades-end` = inclusive | exclusive: public and account trades include, or exclude,
  trades at exactly `end`.
- `bitvavo-trades-start` = inclusive | exclusive: public and account trades include, or exclude,
  trades at exactly `start`.
- `bitstamp-ohlc-before-listing` = empty | first | zero: OHLC with an `end` before a pair's
  listing returns nothing, the first candles after listing, or zero-volume fillers.
- `bitvavo-candles-settle` = MINUTES (0): the candles of the last MINUTES come back incomplete
  on a first read (some missing, volumes still growing).
- `bitstamp-perps` = off | on: `/markets/` and `/fees/trading/` also list perpetual markets.
- `bitvavo-withdrawal-amount` = net | gross | mixed: a withdrawal's `amount` (withdrawalHistory,
  and `sentAmount` in `/account/history`) excludes its fee, or includes it, or (`mixed`)
  withdrawalHistory includes it while `/account/history` does not.
- `bitvavo-history-amounts` = exact | rounded | fee: an `/account/history` order-book buy/sell
  shows its quote amount as the fills' amount × price exactly, rounded to the quote currency's
  decimals (2 for EUR), or with the fee inside (a buy's `sentAmount` + fee, a sell's
  `receivedAmount` − fee).
- `bitvavo-error-text` = parameter | documented: an errorCode 205 names its parameter as real
  logs show ("price parameter is invalid."), or as the errors page documents ("Invalid
  parameter: price").
- `bitstamp-json-spacing`, `bitvavo-json-spacing` = compact | spaced: the exchange writes its
  JSON without whitespace, or with a space after every `,` and `:` (as Python's `json.dumps`
  does); the recorded bodies were re-serialised by their recorders, so they do not tell.

The first value is the default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

CHOICES: dict[str, tuple[str, ...]] = {
    "bitvavo-history-ids": ("fill", "own", "order"),
    "bitstamp-crypto-limit": ("per-list", "combined"),
    "bitvavo-trades-span": ("none", "24h"),
    "bitvavo-trades-end": ("inclusive", "exclusive"),
    "bitvavo-trades-start": ("inclusive", "exclusive"),
    "bitstamp-ohlc-before-listing": ("empty", "first", "zero"),
    "bitstamp-perps": ("off", "on"),
    "bitvavo-withdrawal-amount": ("net", "gross", "mixed"),
    "bitvavo-history-amounts": ("exact", "rounded", "fee"),
    "bitvavo-error-text": ("parameter", "documented"),
    "bitstamp-json-spacing": ("compact", "spaced"),
    "bitvavo-json-spacing": ("compact", "spaced"),
}
MINUTES = ("bitvavo-candles-settle",)
MAX_SETTLE_MINUTES = 24 * 60


@dataclass(frozen=True, slots=True)
class Variants:
    """One reality of every open point; each field is named after its option (`-` → `_`)."""

    bitvavo_history_ids: str = "fill"
    bitstamp_crypto_limit: str = "per-list"
    bitvavo_trades_span: str = "none"
    bitvavo_trades_end: str = "inclusive"
    bitvavo_trades_start: str = "inclusive"
    bitstamp_ohlc_before_listing: str = "empty"
    bitvavo_candles_settle: int = 0
    bitstamp_perps: str = "off"
    bitvavo_withdrawal_amount: str = "net"
    bitvavo_history_amounts: str = "exact"
    bitvavo_error_text: str = "parameter"
    bitstamp_json_spacing: str = "compact"
    bitvavo_json_spacing: str = "compact"

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, _field(name))
            if value not in allowed:
                raise ValueError(f"sandbox variant {name}={value!r}: choose one of {allowed}")
        settle = self.bitvavo_candles_settle
        if not isinstance(settle, int) or not 0 <= settle <= MAX_SETTLE_MINUTES:
            raise ValueError(
                f"sandbox variant bitvavo-candles-settle={settle!r}: "
                f"whole minutes from 0 to {MAX_SETTLE_MINUTES}"
            )

    def json_spacing(self, exchange: str) -> str:
        """How `exchange` writes its JSON: "compact" or "spaced"."""
        spacing: str = getattr(self, f"{exchange}_json_spacing")
        return spacing

    def changed(self) -> dict[str, str]:
        """The options that differ from the default, as `{"name": "value"}`."""
        default = Variants()
        return {
            _option(f.name): str(getattr(self, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(default, f.name)
        }

    def __str__(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.changed().items()) or "default"


def parse_variants(options: Iterable[str]) -> Variants:
    """`["name=value", ...]` → `Variants`; an unknown name or value is a `ValueError` naming it."""
    values: dict[str, object] = {}
    for option in options:
        name, sep, value = option.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not value:
            raise ValueError(f"sandbox variant {option!r}: write NAME=VALUE")
        if name not in CHOICES and name not in MINUTES:
            known = ", ".join([*CHOICES, *MINUTES])
            raise ValueError(f"unknown sandbox variant {name!r}: one of {known}")
        if name in MINUTES:
            try:
                values[_field(name)] = int(value)
            except ValueError:
                raise ValueError(f"sandbox variant {name}={value!r}: whole minutes") from None
        else:
            values[_field(name)] = value
    return Variants(**values)  # type: ignore[arg-type]


def every_variant() -> list[Variants]:
    """One `Variants` per non-default value of every option (a settle delay of 30 minutes)."""
    found = [
        Variants(**{_field(name): value})  # type: ignore[arg-type]
        for name, allowed in CHOICES.items()
        for value in allowed[1:]
    ]
    found += [Variants(**{_field(name): 30}) for name in MINUTES]  # type: ignore[arg-type]
    return found


def _field(option: str) -> str:
    return option.replace("-", "_")


def _option(field: str) -> str:
    return field.replace("_", "-")
