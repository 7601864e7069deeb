"""The markets of the simulated world and the price paths that tie them together.

Bitvavo's BTC-EUR and ETH-EUR follow the packaged real closes; Bitstamp's btceur/etheur are the
same paths a small spread away; the USD pairs are the EUR price times the EUR-USD rate; ADA-EUR,
EUR-USD and GBP-EUR are plain random walks around plausible levels.

Every listed market exists in a recorded real market list (`tests/test_sandbox_markets.py`):
Bitstamp has `gbpeur` (GBP/EUR), not `eurgbp`. `DELISTED` are Bitvavo markets the account traded
and that `/v2/markets` no longer lists: the emulators serve no market data for them. PHA-EUR's
fills are still served by `/v2/trades`; NEO-EUR's trades are only in `/account/history` (its
`/v2/trades` answers errorCode 205), so both realities of a delisted market are played at once.
`PERPETUALS` are the rows Bitstamp's `/markets/` and `/fees/trading/` add for perpetual markets
(variant `bitstamp-perps=on`), as ccxt documents them; they have no tape.
Bitstamp's ltceur, a walk too, is listed late (`LISTED_LATE`): inside the account window, so
that a sync meets a pair's listing.
"""

from __future__ import annotations

import math

from pipelines.sandbox.market import Market, MarketSpec, market_key
from pipelines.sandbox.prices import Path, SpreadPath, SumPath, WalkPath

BITSTAMP = "bitstamp"
BITVAVO = "bitvavo"


def _spec(
    exchange: str,
    symbol: str,
    pair: str,
    decimals: tuple[int, int],
    hourly_vol: float,
    trades_per_minute: float,
    active: tuple[float, float],
    empty_hour: tuple[float, float],
    size: tuple[float, float],
) -> MarketSpec:
    base, quote = pair.split("/")
    return MarketSpec(
        exchange, symbol, base, quote, decimals[0], decimals[1], hourly_vol, trades_per_minute,
        active[0], active[1], empty_hour[0], empty_hour[1], size[0], size[1],
    )  # fmt: skip


# decimals = (price, amount); active / empty_hour = (06-24 UTC, 00-06 UTC); size = (mean, min)
SPECS: tuple[MarketSpec, ...] = (
    _spec(BITSTAMP, "btcusd", "BTC/USD", (0, 8), 0.006, 4.0, (0.99, 0.95), (0, 0), (0.05, 1e-5)),
    _spec(BITSTAMP, "btceur", "BTC/EUR", (0, 8), 0.006, 2.5, (0.96, 0.85), (0, 0), (0.04, 1e-5)),
    _spec(BITSTAMP, "ethusd", "ETH/USD", (1, 8), 0.008, 2.0, (0.93, 0.8), (0, 0), (0.6, 1e-4)),
    _spec(BITSTAMP, "etheur", "ETH/EUR", (1, 8), 0.008, 1.5, (0.85, 0.65), (0, 1e-3), (0.5, 1e-4)),
    _spec(BITSTAMP, "eurusd", "EUR/USD", (5, 5), 8e-4, 1.2, (0.35, 0.12), (0.01, 0.05), (800, 1)),
    _spec(BITSTAMP, "gbpeur", "GBP/EUR", (5, 5), 6e-4, 0.8, (0.3, 0.1), (0.01, 0.05), (500, 1)),
    _spec(BITVAVO, "BTC-EUR", "BTC/EUR", (0, 8), 0.006, 3.0, (0.95, 0.8), (0, 1e-3), (0.03, 1e-5)),
    _spec(
        BITVAVO, "ETH-EUR", "ETH/EUR", (1, 8), 0.008, 2.0, (0.88, 0.6), (5e-4, 3e-3), (0.4, 1e-4)
    ),
    _spec(BITVAVO, "ADA-EUR", "ADA/EUR", (5, 6), 0.011, 1.4, (0.6, 0.3), (3e-3, 0.02), (2500, 1)),
    _spec(BITSTAMP, "ltceur", "LTC/EUR", (2, 8), 0.01, 0.8, (0.5, 0.25), (0.01, 0.04), (3, 1e-3)),
)
DELISTED: tuple[MarketSpec, ...] = (
    _spec(BITVAVO, "PHA-EUR", "PHA/EUR", (5, 8), 0.014, 0.8, (0.5, 0.2), (0.01, 0.04), (900, 1)),
    _spec(BITVAVO, "NEO-EUR", "NEO/EUR", (3, 0), 0.012, 0.6, (0.4, 0.2), (0.01, 0.04), (20, 1)),
)
# Bitstamp's `/markets/` row of a perpetual market (ccxt's bitstamp.py, fetch_markets comment).
PERPETUALS: tuple[dict[str, object], ...] = (
    {
        "name": "BTC/USD-PERP",
        "market_symbol": "btcusd-perp",
        "base_currency": "BTC",
        "base_decimals": 5,
        "counter_currency": "USD",
        "counter_decimals": 0,
        "minimum_order_value": "10",
        "maximum_order_value": "500000.00000000",
        "minimum_order_amount": "0.00001000",
        "maximum_order_amount": "10.00000000",
        "trading": "Enabled",
        "instant_order_counter_decimals": 2,
        "instant_and_market_orders": "Enabled",
        "description": "Bitcoin / U.S. dollar Perpetual",
        "market_type": "PERPETUAL",
        "underlying_asset": "Kaiko BTC Benchmark Reference Rate",
        "payoff_type": "Linear",
        "contract_size": "1.00000000",
        "isin": "EZHKD4DNKHY3",
    },
)
LISTED_LATE = ((BITSTAMP, "ltceur"),)
"""Markets listed after the account window starts (no account trades them; see `World`)."""


def build_paths(seed: int) -> dict[tuple[str, str], Path]:
    """The hourly log-price path of every market, wired together."""

    def key(name: str) -> int:
        return market_key(seed, "path", name)

    btc_eur = WalkPath(
        key("BTC-EUR"), level=60_000, hourly_vol=0.006, noise=0.0012, anchors="btc_eur"
    )
    eth_eur = WalkPath(
        key("ETH-EUR"), level=2_500, hourly_vol=0.008, noise=0.0012, anchors="eth_eur"
    )
    ada_eur = WalkPath(key("ADA-EUR"), level=0.45, hourly_vol=0.011, reversion=0.7, noise=0.001)
    ltc_eur = WalkPath(key("LTC-EUR"), level=80, hourly_vol=0.01, reversion=0.7, noise=0.001)

    def fiat(name: str, level: float, hourly_vol: float, band: tuple[float, float]) -> WalkPath:
        """A fiat rate: a slow walk that stays inside `band`."""
        return WalkPath(
            key(name),
            level=level,
            hourly_vol=hourly_vol,
            reversion=0.3,
            noise=0.0002,
            clamp=(math.log(band[0]), math.log(band[1])),
        )

    eur_usd = fiat("EUR-USD", 1.085, 0.0005, (1.05, 1.12))
    gbp_eur = fiat("GBP-EUR", 1.17, 0.0004, (1.11, 1.21))
    bs_btc_eur = SpreadPath(key("bitstamp-btceur"), btc_eur, 0.0004)
    bs_eth_eur = SpreadPath(key("bitstamp-etheur"), eth_eur, 0.0005)
    return {
        (BITSTAMP, "btcusd"): SumPath(key("bitstamp-btcusd"), bs_btc_eur, eur_usd, 0.0002),
        (BITSTAMP, "btceur"): bs_btc_eur,
        (BITSTAMP, "ethusd"): SumPath(key("bitstamp-ethusd"), bs_eth_eur, eur_usd, 0.0002),
        (BITSTAMP, "etheur"): bs_eth_eur,
        (BITSTAMP, "eurusd"): eur_usd,
        (BITSTAMP, "gbpeur"): gbp_eur,
        (BITVAVO, "BTC-EUR"): btc_eur,
        (BITVAVO, "ETH-EUR"): eth_eur,
        (BITVAVO, "ADA-EUR"): ada_eur,
        (BITVAVO, "PHA-EUR"): WalkPath(
            key("PHA-EUR"), level=0.14, hourly_vol=0.014, reversion=0.7, noise=0.001
        ),
        (BITVAVO, "NEO-EUR"): WalkPath(
            key("NEO-EUR"), level=11.5, hourly_vol=0.012, reversion=0.7, noise=0.001
        ),
        (BITSTAMP, "ltceur"): ltc_eur,
    }


def build_markets(
    seed: int, genesis_ms: int, specs: tuple[MarketSpec, ...] = SPECS
) -> dict[tuple[str, str], Market]:
    """The markets of `specs` (default the listed ones; `DELISTED` for the delisted ones)."""
    paths = build_paths(seed)
    return {
        (spec.exchange, spec.symbol): Market(
            spec, paths[(spec.exchange, spec.symbol)], seed=seed, genesis_ms=genesis_ms
        )
        for spec in specs
    }
