"""The open points a probe settles: each one's realities, what each means, how tally copes.

The names and values are those of the sandbox's variants (`tally sandbox --variant NAME=VALUE`,
the points docs/exchanges.md tags open), so that a probe's row says which sandbox reality the
real exchange plays. A probe collects `Evidence`: each observation names the realities it fits;
the realities that every observation fits are what the account shows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MEANINGS: Mapping[str, Mapping[str, str]] = {
    "bitvavo-history-ids": {
        "fill": "an /account/history buy or sell of order-book trades carries the fill's id "
        "from /v2/trades",
        "own": "an /account/history buy or sell of order-book trades carries an id of its own, "
        "one item per fill",
        "order": "an /account/history buy or sell of order-book trades is one item per order, "
        "with an id of its own, summing the order's fills",
    },
    "bitvavo-history-amounts": {
        "exact": "an /account/history order-book buy or sell shows its quote amount as the "
        "fills' amount × price, exactly",
        "rounded": "an /account/history order-book buy or sell shows its quote amount rounded "
        "to the quote currency's decimals",
        "fee": "an /account/history order-book buy or sell shows its quote amount with the fee "
        "inside (a buy's sent amount + fee, a sell's received amount − fee)",
    },
    "bitvavo-trades-span": {
        "none": "account /v2/trades accepts a start–end span as long as a sync asks for",
        "24h": "account /v2/trades refuses a start–end span over 24 h (errorCode 205) and "
        "accepts 24 h",
    },
    "bitvavo-trades-end": {
        "inclusive": "a trades request's `end` includes the trades at exactly `end`",
        "exclusive": "a trades request's `end` leaves out the trades at exactly `end`",
    },
    "bitvavo-trades-start": {
        "inclusive": "a trades request's `start` includes the trades at exactly `start`",
        "exclusive": "a trades request's `start` leaves out the trades at exactly `start`",
    },
    "bitvavo-withdrawal-amount": {
        "net": "a withdrawal's amount excludes its fee, in withdrawalHistory and "
        "/account/history: the amount is what arrives",
        "gross": "a withdrawal's amount includes its fee, in withdrawalHistory and "
        "/account/history: amount − fee is what arrives",
        "mixed": "withdrawalHistory shows a withdrawal's amount with its fee inside, "
        "/account/history without it",
    },
    "bitvavo-error-text": {
        "parameter": 'an errorCode 205 names its parameter as real logs show ("market parameter '
        'is invalid.")',
        "documented": 'an errorCode 205 names its parameter as the errors page documents it ("'
        'Invalid parameter: market")',
    },
    "bitvavo-candles-settle": {},
    "bitstamp-json-spacing": {
        "compact": "Bitstamp writes its JSON without whitespace",
        "spaced": "Bitstamp writes its JSON with a space after every separator",
    },
    "bitvavo-json-spacing": {
        "compact": "Bitvavo writes its JSON without whitespace",
        "spaced": "Bitvavo writes its JSON with a space after every separator",
    },
    "bitstamp-crypto-limit": {
        "per-list": "crypto-transactions `limit`/`offset` slice the deposits and the withdrawals "
        "each on its own",
        "combined": "crypto-transactions `limit`/`offset` slice the deposits and withdrawals "
        "together, as one newest-first sequence",
    },
    "bitstamp-ohlc-before-listing": {
        "empty": "OHLC with an `end` before a pair's listing returns no candle",
        "first": "OHLC with an `end` before a pair's listing returns the first candles after "
        "the listing (opening after `end`)",
        "zero": "OHLC with an `end` before a pair's listing returns zero-volume filler candles",
    },
    "bitstamp-perps": {
        "off": "/markets/ lists spot markets only",
        "on": "/markets/ lists perpetual markets too",
    },
}
"""Per open point, per reality, what the exchange does (`bitvavo-candles-settle` is a number
of minutes, not a choice; its probe cannot settle it)."""

_SPACING_HANDLED = (
    "tally reads compact candle pages straight from the body and decodes any other, landing the "
    "same rows either way"
)

HANDLING: Mapping[str, str] = {
    "bitvavo-history-ids": "tally matches history trades to fills by market, side, time and "
    "amounts, per fill or per order, never by id alone",
    "bitvavo-history-amounts": "tally matches exactly, then within rounding or the fee, and "
    "books order-book trades from the /v2/trades fills, never from the history's amounts",
    "bitvavo-trades-span": "tally walks a refused window in 24 h (or shorter) pieces and keeps "
    "the accepted span for the rest of the run",
    "bitvavo-trades-end": "tally pages with `end` = the oldest millisecond seen + 1 ms and "
    "drops repeated ids, so no trade is lost either way",
    "bitvavo-trades-start": "a walk of 24 h windows goes on below a short window with `end` = "
    "its start + 1 ms, so the trades at a window's start are read either way",
    "bitvavo-withdrawal-amount": "the warehouse decides where a withdrawal's fee is from the "
    "txids that reached your other account (transfers.fee_basis) and matches the two listings "
    "whether or not they agree",
    "bitvavo-error-text": "tally goes by the errorCode, not its wording, and knows a span "
    "refusal in either wording",
    "bitvavo-candles-settle": "tally reads a candle again until a read comes "
    "`candles_reread_minutes` after its close",
    "bitstamp-crypto-limit": "tally pages by offset until a page holds fewer than `limit` "
    "rows in all its lists together, which is right either way",
    "bitstamp-ohlc-before-listing": "tally's OHLC walk ends at the listing in each case (it "
    "checks that a page of later candles starts with the pair's first, and the candles flow "
    "keeps no filler before a listing)",
    "bitstamp-perps": "tally names a perpetual BASE-QUOTE-PERP and never maps it onto a spot "
    "market",
    "bitstamp-json-spacing": _SPACING_HANDLED,
    "bitvavo-json-spacing": _SPACING_HANDLED,
}


@dataclass
class Evidence:
    """What a probe saw: each observation with the realities it fits (none: an unknown one)."""

    observations: list[tuple[frozenset[str], str]] = field(default_factory=list)

    def add(self, fits: Iterable[str], seen: str) -> None:
        self.observations.append((frozenset(fits), seen))

    def __bool__(self) -> bool:
        return bool(self.observations)

    def __len__(self) -> int:
        return len(self.observations)

    def realities(self, choices: Iterable[str]) -> frozenset[str]:
        """The realities of `choices` that every observation fits."""
        left = frozenset(choices)
        for fits, _ in self.observations:
            left &= fits
        return left

    def decided(self, choices: Iterable[str]) -> bool:
        """Whether more observations could change nothing: one reality left, or none."""
        return bool(self) and len(self.realities(choices)) <= 1

    def conflicts(self, choices: Iterable[str], most: int = 3) -> list[str]:
        """Up to `most` observations that together fit no reality: each one that fits none,
        else the first of each different set of realities."""
        alone = [seen for fits, seen in self.observations if not fits & frozenset(choices)]
        if alone:
            return alone[:most]
        firsts: dict[frozenset[str], str] = {}
        for fits, seen in self.observations:
            firsts.setdefault(fits, seen)
        return list(firsts.values())[:most]

    def example(self, reality: str) -> str:
        """The first observation that fits `reality` alone, else the first that fits it."""
        fitting = [(fits, seen) for fits, seen in self.observations if reality in fits]
        for fits, seen in fitting:
            if fits == {reality}:
                return seen
        return fitting[0][1] if fitting else ""
