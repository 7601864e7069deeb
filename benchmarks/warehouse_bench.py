"""Warehouse build and query speed over a synthetic lake with 1,000,000 fills.

The lake is generated straight as polars frames (no record objects), typed by `pipelines.datasets`
and landed with `pipelines.lake`, laid out as the flows lay it out: two years of Bitstamp ledger
pages of 1000 rows (trades, funding deposits, crypto transfers) with their derived fills and
transfers and the crypto-transactions listing; Bitvavo /v2/trades fills (one file per market),
the account history listing each of them (and its matches, as the sync derives them),
deposit/withdrawal histories; coins moved between
the two accounts with matching txids; 1h candles for the EUR prices of every fee asset; fee
schedules; and balance snapshots equal to each account's exact replay, so that every
`reconcile_balances` row is 'ok' (checked). Then the warehouse is built from nothing in a child
process (its seconds and peak RSS are the build's alone: loading the lake and computing every
model) and each query timed (median of `--runs`, 3 by default, on a read-only connection, all
cores DuckDB finds), its rows hashed in a fixed order, so that two builds can be compared by
their hashes. `fill_checks` is timed as a count per status, which reads every fill's verdict but
turns no million rows into Python objects.

Run alone with `python -m benchmarks.warehouse_bench [--fills N] [--runs R] [--json FILE]`
(1,000,000 fills: about a minute and a half on 2 cores, 2 GB). `--json` writes
`{"fills": N, "build_s": …, "peak_rss_mb": …, "queries": {"reconcile_balances": {"median_s": …,
"rows_sha256": …}, …}, …}`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import polars as pl

from pipelines.config import Settings
from pipelines.datasets import (
    BALANCE_SNAPSHOTS,
    BITSTAMP_LEDGER,
    BITVAVO_HISTORY,
    BITVAVO_HISTORY_MATCHES,
    CANDLES,
    FEE_SCHEDULES,
    FILLS,
    TRANSFERS,
)
from pipelines.flows.plan import Window
from pipelines.lake import MONEY, Dataset, Lake
from pipelines.tables import LiveTable
from warehouse.connect import connect

FILL_COUNT = 1_000_000
TRANSFER_PAIRS = 1_000  # each way
LEDGER_PAGE = 1_000
RUNS = 3
ACCOUNT = "main"
START = datetime(2022, 6, 1, tzinfo=UTC)
END = datetime(2024, 6, 1, tzinfo=UTC)
TAKEN_AT = END + timedelta(minutes=1)
SPAN_US = int((END - START).total_seconds() * 1_000_000)
START_US = int(START.timestamp() * 1_000_000)

# (market, lowest price, price range), prices in cents; amounts in 1e-8 units
BITSTAMP_MARKETS = (
    ("BTC-EUR", 3_000_000, 4_000_000),
    ("ETH-EUR", 150_000, 250_000),
    ("BTC-USD", 3_200_000, 4_200_000),
)
BITVAVO_MARKETS = (
    ("BTC-EUR", 3_000_000, 4_000_000),
    ("ETH-EUR", 150_000, 250_000),
    ("SOL-EUR", 2_000, 18_000),
)
BITSTAMP_RATE = 3  # 0.0030 per quote cent, in 1e-5 units: exact
BITVAVO_TAKER, BITVAVO_MAKER, SOL_MAKER = 25, 15, -1  # in 1e-4
FUNDING = {"EUR": 10**9, "USD": 10**9, "BTC": 100_000, "ETH": 1_000_000, "SOL": 10_000_000}
BTC_FEE_UNITS, ETH_FEE_UNITS = 15_000, 120_000  # 0.00015 BTC (Bitstamp), 0.0012 ETH (Bitvavo)

QUERIES = (
    ("reconcile_balances", "select * from reconcile_balances"),
    ("ledger", "select count(*) from ledger"),
    ("fees", "select * from fees"),
    ("fill_checks", "select status, problems, count(*) from fill_checks group by all"),
    ("internal_transfers", "select * from internal_transfers"),
)


# --- expression helpers ------------------------------------------------------------------------


def noise(seed: int, modulo: int) -> pl.Expr:
    """A deterministic pseudo-random integer in [0, modulo) per row index `i`."""
    return (pl.col("i").hash(seed) % modulo).cast(pl.Int64)


def money(units: pl.Expr, scale: int) -> pl.Expr:
    """Integer units of 10^-scale as an exact DECIMAL(38,18)."""
    return units.cast(MONEY) / pl.lit(10**scale).cast(MONEY)


def text(units: pl.Expr, scale: int) -> pl.Expr:
    """Integer units of 10^-scale as exact decimal text, padded ("-0.00123000")."""
    magnitude = units.abs()
    return pl.concat_str(
        pl.when(units < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 10**scale).cast(pl.String),
        pl.lit("."),
        (magnitude % 10**scale).cast(pl.String).str.zfill(scale),
    )


def moment(us: pl.Expr) -> pl.Expr:
    return us.cast(pl.Datetime("us", "UTC"))


def typed(dataset: Dataset, frame: pl.DataFrame, fetched_at: datetime = TAKEN_AT) -> pl.DataFrame:
    """`frame` with the dataset's columns in order: the missing ones null (extra "{}")."""
    columns = []
    for name, dtype in dataset.schema.items():
        if name in frame.columns:
            columns.append(pl.col(name).cast(dtype))
        elif name == "extra":
            columns.append(pl.lit("{}").alias(name))
        elif name == "raw":
            columns.append(pl.lit("").alias(name))
        elif name == "fetched_at":
            columns.append(pl.lit(fetched_at).cast(dtype).alias(name))
        else:
            columns.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(columns)


def json_object(fields: Mapping[str, pl.Expr]) -> pl.Expr:
    """A compact JSON object whose values are all strings."""
    parts: list[pl.Expr] = [pl.lit("{")]
    for index, (key, value) in enumerate(fields.items()):
        parts += [pl.lit(("," if index else "") + f'"{key}":"'), value, pl.lit('"')]
    return pl.concat_str([*parts, pl.lit("}")])


def index_frame(count: int) -> pl.DataFrame:
    return pl.DataFrame({"i": pl.int_range(count, eager=True, dtype=pl.Int64)})


def market_columns(markets: tuple[tuple[str, int, int], ...], count: int) -> list[pl.Expr]:
    """market, base_asset, quote_asset, price_cents, base_units, side, executed_at per row
    (`count` rows spread evenly over the span)."""
    pick = noise(1, len(markets))
    market = pl.lit(markets[-1][0])
    low = pl.lit(markets[-1][1])
    spread = pl.lit(markets[-1][2])
    for index, (name, lowest, span) in reversed(list(enumerate(markets[:-1]))):
        market = pl.when(pick == index).then(pl.lit(name)).otherwise(market)
        low = pl.when(pick == index).then(pl.lit(lowest)).otherwise(low)
        spread = pl.when(pick == index).then(pl.lit(span)).otherwise(spread)
    return [
        market.alias("market"),
        market.str.split("-").list.get(0).alias("base_asset"),
        market.str.split("-").list.get(1).alias("quote_asset"),
        (low + noise(2, 1_000_000_000) % spread).alias("price_cents"),
        (100_000 + noise(3, 50_000_000)).alias("base_units"),
        pl.when(noise(4, 2) == 0).then(pl.lit("buy")).otherwise(pl.lit("sell")).alias("side"),
        moment(pl.lit(START_US) + pl.col("i") * (SPAN_US // count)).alias("executed_at"),
    ]


# --- Bitstamp ----------------------------------------------------------------------------------


def bitstamp_trades(count: int) -> pl.DataFrame:
    """Ledger rows of trades (type 2): quote rounded half up to cents, fee 0.30 % exactly."""
    frame = index_frame(count).with_columns(market_columns(BITSTAMP_MARKETS, count))
    frame = frame.with_columns(
        entry_id=200_000_000 + pl.col("i") * 3,
        quote_cents=(pl.col("base_units") * pl.col("price_cents") + 50_000_000) // 100_000_000,
    ).with_columns(
        fee_units=pl.col("quote_cents") * BITSTAMP_RATE,
        base_signed=pl.when(pl.col("side") == "buy")
        .then(pl.col("base_units"))
        .otherwise(-pl.col("base_units")),
        quote_signed=pl.when(pl.col("side") == "buy")
        .then(-pl.col("quote_cents"))
        .otherwise(pl.col("quote_cents")),
    )
    pair_key = pl.concat_str(
        pl.col("base_asset").str.to_lowercase(),
        pl.lit("_"),
        pl.col("quote_asset").str.to_lowercase(),
    )
    raw = pl.concat_str(
        pl.lit('{"id":'),
        pl.col("entry_id").cast(pl.String),
        pl.lit(',"type":"2","fee":"'),
        text(pl.col("fee_units"), 5),
        pl.lit('","'),
        pl.col("base_asset").str.to_lowercase(),
        pl.lit('":"'),
        text(pl.col("base_signed"), 8),
        pl.lit('","'),
        pl.col("quote_asset").str.to_lowercase(),
        pl.lit('":"'),
        text(pl.col("quote_signed"), 2),
        pl.lit('","'),
        pair_key,
        pl.lit('":'),
        text(pl.col("price_cents"), 2),
        pl.lit(',"order_id":'),
        (pl.col("entry_id") // 6).cast(pl.String),
        pl.lit("}"),
    )
    return frame.select(
        pl.lit(ACCOUNT).alias("account"),
        "entry_id",
        pl.lit("2").alias("type_code"),
        pl.lit("trade").alias("kind"),
        "executed_at",
        pl.concat_list(
            pl.struct(
                pl.col("base_asset").alias("asset"), money(pl.col("base_signed"), 8).alias("amount")
            ),
            pl.struct(
                pl.col("quote_asset").alias("asset"),
                money(pl.col("quote_signed"), 2).alias("amount"),
            ),
        ).alias("movements"),
        money(pl.col("fee_units"), 5).alias("fee"),
        pl.col("quote_asset").alias("fee_asset"),
        pl.col("market").alias("pair"),
        money(pl.col("price_cents"), 2).alias("price"),
        (pl.col("entry_id") // 6).cast(pl.String).alias("order_id"),
        "side",
        pl.lit("user_transactions").alias("source"),
        raw.alias("raw"),
        # kept for the derived fills
        "market",
        "base_asset",
        "quote_asset",
        money(pl.col("base_units"), 8).alias("base_amount"),
        money(pl.col("quote_cents"), 2).alias("quote_amount"),
    )


def bitstamp_transfers() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(ledger rows, derived transfers, crypto-transactions rows): funding deposits, BTC sent
    to Bitvavo (gross amount, fee inside) and ETH received from it, each with its txid."""
    assets = [a for a in FUNDING if a != "SOL"]
    funding = pl.DataFrame(
        {
            "entry_id": list(range(100_000_000, 100_000_000 + len(assets))),
            "asset": assets,
            "units": [FUNDING[a] * 10**8 for a in assets],
        }
    ).with_columns(
        kind=pl.lit("deposit"),
        fee_units=pl.lit(0, dtype=pl.Int64),
        executed_at=pl.lit(START - timedelta(days=1)),
        txid=pl.lit(None, dtype=pl.String),
    )
    pairs = pair_frame()
    sent = pairs.select(
        (150_000_000 + pl.col("i")).alias("entry_id"),
        pl.lit("BTC").alias("asset"),
        (pl.col("net_units") + BTC_FEE_UNITS).alias("units"),
        pl.lit("withdrawal").alias("kind"),
        pl.lit(BTC_FEE_UNITS, dtype=pl.Int64).alias("fee_units"),
        pl.col("sent_at").alias("executed_at"),
        pl.col("btc_txid").alias("txid"),
    )
    received = pairs.select(
        (160_000_000 + pl.col("i")).alias("entry_id"),
        pl.lit("ETH").alias("asset"),
        pl.col("net_units").alias("units"),
        pl.lit("deposit").alias("kind"),
        pl.lit(0, dtype=pl.Int64).alias("fee_units"),
        pl.col("arrived_at").alias("executed_at"),
        pl.col("eth_txid").alias("txid"),
    )
    rows = pl.concat([funding, sent, received], how="vertical_relaxed")
    deposit = pl.col("kind") == "deposit"
    signed = pl.when(deposit).then(pl.col("units")).otherwise(-pl.col("units"))
    ledger = rows.select(
        pl.lit(ACCOUNT).alias("account"),
        "entry_id",
        pl.when(deposit).then(pl.lit("0")).otherwise(pl.lit("1")).alias("type_code"),
        "kind",
        "executed_at",
        pl.concat_list(pl.struct(pl.col("asset"), money(signed, 8).alias("amount"))).alias(
            "movements"
        ),
        money(pl.col("fee_units"), 8).alias("fee"),
        pl.col("asset").alias("fee_asset"),
        pl.lit("user_transactions").alias("source"),
    )
    derived = rows.select(
        pl.lit("bitstamp").alias("exchange"),
        pl.lit(ACCOUNT).alias("account"),
        pl.col("entry_id").cast(pl.String).alias("transfer_id"),
        "kind",
        "asset",
        money(pl.col("units"), 8).alias("amount"),
        money(pl.col("fee_units"), 8).alias("fee"),
        pl.col("asset").alias("fee_asset"),
        "executed_at",
        pl.lit("user_transactions").alias("source"),
    )
    crypto = (
        rows.filter(pl.col("txid").is_not_null())
        .with_columns(on_chain=pl.col("units") - pl.col("fee_units"))
        .select(
            pl.lit("bitstamp").alias("exchange"),
            pl.lit(ACCOUNT).alias("account"),
            pl.concat_str(pl.col("kind"), pl.lit(":"), pl.col("txid")).alias("transfer_id"),
            "kind",
            "asset",
            money(pl.col("on_chain"), 8).alias("amount"),
            "txid",
            pl.when(pl.col("asset") == "BTC")
            .then(pl.lit("bitcoin"))
            .otherwise(pl.lit("ethereum"))
            .alias("network"),
            "executed_at",
            pl.lit("crypto-transactions").alias("source"),
        )
    )
    return ledger, derived, crypto


def pair_frame() -> pl.DataFrame:
    """The coins moved between the accounts: per pair a BTC and an ETH transfer."""
    step = SPAN_US // TRANSFER_PAIRS
    return index_frame(TRANSFER_PAIRS).with_columns(
        net_units=10_000_000 + noise(7, 90_000_000),
        sent_at=moment(pl.lit(START_US) + pl.col("i") * step + 3_600_000_000),
        arrived_at=moment(pl.lit(START_US) + pl.col("i") * step + 3_600_000_000 + 2_400_000_000),
        btc_txid=pl.concat_str(pl.lit("b"), pl.col("i").cast(pl.String).str.zfill(63)),
        eth_txid=pl.concat_str(pl.lit("0xe"), pl.col("i").cast(pl.String).str.zfill(63)),
    )


# --- Bitvavo -----------------------------------------------------------------------------------


def bitvavo_fills(count: int) -> pl.DataFrame:
    """/v2/trades fills: quote = amount × price exactly, fee rounded to 1e-13, SOL maker rebate."""
    frame = index_frame(count).with_columns(market_columns(BITVAVO_MARKETS, count))
    frame = frame.with_columns(
        fill_id=pl.concat_str(pl.lit("f"), pl.col("i").cast(pl.String).str.zfill(12)),
        order_id=pl.concat_str(pl.lit("o"), (pl.col("i") // 3).cast(pl.String).str.zfill(12)),
        taker=noise(5, 10) < 6,
        quote_units=pl.col("base_units") * pl.col("price_cents"),  # 1e-10
    ).with_columns(
        rate=pl.when(pl.col("taker"))
        .then(BITVAVO_TAKER)
        .when(pl.col("market") == "SOL-EUR")
        .then(SOL_MAKER)
        .otherwise(BITVAVO_MAKER),
    )
    fee_13 = (
        pl.when(pl.col("rate") > 0)
        .then((pl.col("quote_units") * pl.col("rate") + 5) // 10)
        .otherwise(-((pl.col("quote_units") * -pl.col("rate") + 5) // 10))
    )
    frame = frame.with_columns(fee_units=fee_13)
    raw = json_object(
        {
            "id": pl.col("fill_id"),
            "orderId": pl.col("order_id"),
            "market": pl.col("market"),
            "side": pl.col("side"),
            "amount": text(pl.col("base_units"), 8),
            "price": text(pl.col("price_cents"), 2),
            "fee": text(pl.col("fee_units"), 13),
            "feeCurrency": pl.lit("EUR"),
        }
    )
    return frame.select(
        pl.lit("bitvavo").alias("exchange"),
        pl.lit(ACCOUNT).alias("account"),
        "market",
        "base_asset",
        "quote_asset",
        "fill_id",
        "order_id",
        "side",
        money(pl.col("base_units"), 8).alias("base_amount"),
        money(pl.col("quote_units"), 10).alias("quote_amount"),
        money(pl.col("price_cents"), 2).alias("price"),
        money(pl.col("fee_units"), 13).alias("fee"),
        pl.lit("EUR").alias("fee_asset"),
        "taker",
        pl.lit(True).alias("settled"),
        "executed_at",
        pl.lit("trades").alias("source"),
        raw.alias("raw"),
    )


def bitvavo_history(fills: pl.DataFrame) -> pl.DataFrame:
    """account/history: every fill again, as its own item (transactionId = the fill id)."""

    def bought_else_sold(bought: str, sold: str) -> pl.Expr:
        """Column `bought` on a buy, `sold` on a sell."""
        return pl.when(pl.col("side") == "buy").then(pl.col(bought)).otherwise(pl.col(sold))

    return fills.select(
        "account",
        pl.col("fill_id").alias("transaction_id"),
        pl.col("side").alias("type"),
        "executed_at",
        pl.col("quote_asset").alias("price_currency"),
        pl.col("price").alias("price_amount"),
        bought_else_sold("quote_asset", "base_asset").alias("sent_currency"),
        bought_else_sold("quote_amount", "base_amount").alias("sent_amount"),
        bought_else_sold("base_asset", "quote_asset").alias("received_currency"),
        bought_else_sold("base_amount", "quote_amount").alias("received_amount"),
        pl.col("fee_asset").alias("fees_currency"),
        pl.col("fee").alias("fees_amount"),
        pl.lit("account/history").alias("source"),
    )


def bitvavo_matches(fills: pl.DataFrame) -> pl.DataFrame:
    """What the sync derives from that history: each item matched to its own fill."""
    return fills.select(
        "account",
        pl.col("fill_id").alias("transaction_id"),
        "executed_at",
        "market",
        "side",
        "fill_id",
        "order_id",
        pl.lit("matched").alias("status"),
        pl.lit("amounts+id").alias("signal"),
    )


def bitvavo_transfers() -> pl.DataFrame:
    """Funding deposits, the BTC received from Bitstamp and the ETH sent to it."""
    funding = pl.DataFrame(
        {
            "asset": [a for a in FUNDING if a != "USD"],
            "units": [FUNDING[a] * 10**8 for a in FUNDING if a != "USD"],
        }
    ).select(
        pl.concat_str(pl.lit("funding-"), pl.col("asset")).alias("transfer_id"),
        pl.lit("deposit").alias("kind"),
        "asset",
        money(pl.col("units"), 8).alias("amount"),
        pl.lit(Decimal(0)).cast(MONEY).alias("fee"),
        pl.lit(None, dtype=pl.String).alias("txid"),
        pl.lit(START - timedelta(days=1)).alias("executed_at"),
        pl.lit("depositHistory").alias("source"),
    )
    pairs = pair_frame()
    received = pairs.select(
        pl.col("btc_txid").alias("transfer_id"),
        pl.lit("deposit").alias("kind"),
        pl.lit("BTC").alias("asset"),
        money(pl.col("net_units"), 8).alias("amount"),
        pl.lit(Decimal(0)).cast(MONEY).alias("fee"),
        pl.col("btc_txid").alias("txid"),
        pl.col("arrived_at").alias("executed_at"),
        pl.lit("depositHistory").alias("source"),
    )
    sent = pairs.select(
        pl.col("eth_txid").alias("transfer_id"),
        pl.lit("withdrawal").alias("kind"),
        pl.lit("ETH").alias("asset"),
        money(pl.col("net_units"), 8).alias("amount"),
        money(pl.lit(ETH_FEE_UNITS), 8).alias("fee"),
        pl.col("eth_txid").alias("txid"),
        pl.col("sent_at").alias("executed_at"),
        pl.lit("withdrawalHistory").alias("source"),
    )
    return pl.concat([funding, received, sent], how="vertical_relaxed").with_columns(
        exchange=pl.lit("bitvavo"),
        account=pl.lit(ACCOUNT),
        fee_asset=pl.col("asset"),
        status=pl.lit("completed"),
    )


# --- market data, schedules, snapshots ---------------------------------------------------------


def candles() -> pl.DataFrame:
    """Hourly candles over the whole span for every fee asset's EUR price (and EUR-USD)."""
    hours = int((END - START).total_seconds()) // 3600
    series = [
        ("bitvavo", "BTC-EUR", 5_000_000, 2_000_000),
        ("bitvavo", "ETH-EUR", 250_000, 100_000),
        ("bitvavo", "SOL-EUR", 10_000, 8_000),
        ("bitstamp", "EUR-USD", 108, 4),
    ]
    frames = []
    for seed, (exchange, market, level, swing) in enumerate(series):
        frame = index_frame(hours).with_columns(
            close_units=(level + noise(10 + seed, swing)) * 10**6,  # 1e-8 units (1e-2 · 1e-6)
        )
        close = money(pl.col("close_units"), 8)
        frames.append(
            frame.select(
                pl.lit(exchange).alias("exchange"),
                pl.lit(market).alias("market"),
                pl.lit("1h").alias("interval"),
                moment(pl.lit(START_US) + pl.col("i") * 3_600_000_000).alias("open_time"),
                close.alias("open"),
                close.alias("high"),
                close.alias("low"),
                close.alias("close"),
                money(pl.lit(10**8), 8).alias("volume"),
            )
        )
    return pl.concat(frames)


def schedules() -> pl.DataFrame:
    rows = [("bitstamp", m, "0.0020", "0.0030") for m, _, _ in BITSTAMP_MARKETS]
    rows += [
        ("bitvavo", m, "-0.0001" if m == "SOL-EUR" else "0.0015", "0.0025")
        for m, _, _ in BITVAVO_MARKETS
    ]
    return pl.DataFrame(
        {
            "exchange": [r[0] for r in rows],
            "account": ACCOUNT,
            "market": [r[1] for r in rows],
            "maker": [Decimal(r[2]) for r in rows],
            "taker": [Decimal(r[3]) for r in rows],
            "taken_at": TAKEN_AT,
        }
    )


def snapshot(exchange: str, changes: pl.DataFrame) -> pl.DataFrame:
    """The balance snapshot equal to the replay: per asset, the sum of `changes`."""
    totals = changes.group_by("asset").agg(pl.col("amount").sum().alias("total"))
    return totals.select(
        pl.lit(exchange).alias("exchange"),
        pl.lit(ACCOUNT).alias("account"),
        "asset",
        "total",
        pl.col("total").alias("available"),
        pl.lit(Decimal(0)).cast(MONEY).alias("reserved"),
        pl.lit(TAKEN_AT).alias("taken_at"),
    )


def bitstamp_changes(ledger: pl.DataFrame) -> pl.DataFrame:
    """Balance changes of the ledger rows (docs/exchanges.md, "Bitstamp: ledger identity": a
    withdrawal's fee is inside its amount, any other fee is charged on top)."""
    moved = ledger.select(pl.col("movements").explode().struct.unnest())
    fees = ledger.filter(pl.col("kind") != "withdrawal", pl.col("fee") != 0).select(
        pl.col("fee_asset").alias("asset"), (-pl.col("fee")).alias("amount")
    )
    return pl.concat([moved, fees])


def bitvavo_changes(fills: pl.DataFrame, transfers: pl.DataFrame) -> pl.DataFrame:
    buy = pl.col("side") == "buy"
    return pl.concat(
        [
            fills.select(
                pl.col("base_asset").alias("asset"),
                pl.when(buy)
                .then(pl.col("base_amount"))
                .otherwise(-pl.col("base_amount"))
                .alias("amount"),
            ),
            fills.select(
                pl.col("quote_asset").alias("asset"),
                pl.when(buy)
                .then(-pl.col("quote_amount"))
                .otherwise(pl.col("quote_amount"))
                .alias("amount"),
            ),
            fills.select(pl.col("fee_asset").alias("asset"), (-pl.col("fee")).alias("amount")),
            transfers.select(
                "asset",
                pl.when(pl.col("kind") == "deposit")
                .then(pl.col("amount") - pl.col("fee"))
                .otherwise(-(pl.col("amount") + pl.col("fee")))
                .alias("amount"),
            ),
        ]
    )


# --- the lake ----------------------------------------------------------------------------------


def generate(lake: Lake, fills: int = FILL_COUNT) -> dict[str, int]:
    """Land the synthetic lake; returns rows per dataset."""
    trades = bitstamp_trades(fills // 2)
    transfer_ledger, transfer_rows, crypto_rows = bitstamp_transfers()
    ledger = pl.concat(
        [typed(BITSTAMP_LEDGER.dataset, trades), typed(BITSTAMP_LEDGER.dataset, transfer_ledger)]
    ).sort("entry_id")
    land_ledger_pages(lake, ledger, trades, transfer_rows)
    lake.land(TRANSFERS.dataset, typed(TRANSFERS.dataset, crypto_rows), stem="crypto-transactions")

    book = bitvavo_fills(fills - fills // 2)
    for (market,), part in book.group_by("market"):
        lake.land(FILLS.dataset, typed(FILLS.dataset, part), stem=f"trades-{market}")
    history = bitvavo_history(typed(FILLS.dataset, book))
    lake.land(BITVAVO_HISTORY.dataset, typed(BITVAVO_HISTORY.dataset, history), stem="history")
    links = typed(BITVAVO_HISTORY_MATCHES.dataset, bitvavo_matches(typed(FILLS.dataset, book)))
    lake.land(BITVAVO_HISTORY_MATCHES.dataset, links, stem="account-history")
    movements = bitvavo_transfers()
    for source in ("deposit", "withdrawal"):
        part = movements.filter(pl.col("source") == f"{source}History")
        stem = f"{source}-history"
        lake.land(TRANSFERS.dataset, typed(TRANSFERS.dataset, part), stem=stem)

    market_data = candles()
    for (exchange, market), part in market_data.group_by("exchange", "market"):
        lake.land(
            CANDLES.dataset,
            typed(CANDLES.dataset, part, fetched_at=END),
            stem=Window(START, END).stem,
            partition={"exchange": exchange, "market": market, "interval": "1h"},
        )
    lake.land(FEE_SCHEDULES.dataset, typed(FEE_SCHEDULES.dataset, schedules()), stem="snapshots")
    snapshots = pl.concat(
        [
            snapshot("bitstamp", bitstamp_changes(ledger)),
            snapshot("bitvavo", bitvavo_changes(typed(FILLS.dataset, book), movements)),
        ]
    )
    lake.land(
        BALANCE_SNAPSHOTS.dataset, typed(BALANCE_SNAPSHOTS.dataset, snapshots), stem="snapshots"
    )
    return {
        "fills": trades.height + book.height,
        "bitstamp_ledger": ledger.height,
        "bitvavo_history": history.height,
        "transfers": transfer_rows.height + crypto_rows.height + movements.height,
        "candles": market_data.height,
    }


def land_ledger_pages(
    lake: Lake, ledger: pl.DataFrame, trades: pl.DataFrame, transfers: pl.DataFrame
) -> None:
    """The ledger as exchange pages of 1000 rows, each with its derived fills and transfers
    (files named as `pipelines.flows.bitstamp_account` names them)."""
    pages = ledger.with_columns(page=pl.int_range(pl.len()) // LEDGER_PAGE)
    page_of = pages.select("entry_id", "page")
    fills = (
        trades.join(page_of, on="entry_id")
        .with_columns(
            exchange=pl.lit("bitstamp"),
            fill_id=pl.col("entry_id").cast(pl.String),
            settled=pl.lit(True),
        )
        .partition_by("page", as_dict=True)
    )
    moved = transfers.join(
        page_of.with_columns(pl.col("entry_id").cast(pl.String).alias("transfer_id")),
        on="transfer_id",
    ).partition_by("page", as_dict=True)
    for key, page in pages.partition_by("page", as_dict=True).items():
        ids = page.get_column("entry_id")
        first, last = ids.min(), ids.max()
        assert isinstance(first, int) and isinstance(last, int)
        stem = f"ids-{first:015d}-{last:015d}"
        lake.land(BITSTAMP_LEDGER.dataset, typed(BITSTAMP_LEDGER.dataset, page), stem=stem)
        for dataset, derived in ((FILLS.dataset, fills), (TRANSFERS.dataset, moved)):
            if key in derived:
                lake.land(dataset, typed(dataset, derived[key]), stem=f"user_transactions-{stem}")


# --- timing --------------------------------------------------------------------------------------

# The build runs in a child process of its own, so that its peak memory is the build's alone
# (not the generator's frames'); it prints its seconds and peak RSS as JSON. On Linux a child's
# ru_maxrss starts at its parent's peak: it reads its own high-water mark (VmHWM).
BUILD_CHILD = """
import json, resource, sys, time
from pathlib import Path
from pipelines.config import Settings
from pipelines.exchanges.registry import warehouse_rules
from warehouse.build import build
began = time.perf_counter()
build(Settings(data_dir=Path(sys.argv[1])), rules=warehouse_rules())
seconds = time.perf_counter() - began
# VmHWM: this process's own peak (ru_maxrss keeps the parent's peak across the exec)
status = Path("/proc/self/status")
lines = status.read_text().splitlines() if status.exists() else []
peaks = [int(line.split()[1]) for line in lines if line.startswith("VmHWM:")]
peak_kib = peaks[0] if peaks else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"build_s": seconds, "peak_rss_mb": peak_kib / 1024}))
"""


def timed(
    connection: duckdb.DuckDBPyConnection, query: str
) -> tuple[float, list[tuple[object, ...]]]:
    started = time.perf_counter()
    rows: list[tuple[object, ...]] = connection.execute(query).fetchall()
    return time.perf_counter() - started, rows


def check(name: str, rows: list[tuple[object, ...]], fills: int) -> None:
    """The synthetic lake is consistent: the views must say so."""
    if name == "reconcile_balances" and {row[6] for row in rows} != {"ok"}:
        raise AssertionError(f"reconcile_balances is not all ok: {rows}")
    if name == "fill_checks" and rows != [("ok", None, fills)]:
        raise AssertionError(f"fill_checks found problems: {rows}")
    matched = sum(1 for row in rows if row[0] == "matched")
    if name == "internal_transfers" and matched != 2 * TRANSFER_PAIRS:
        raise AssertionError(f"internal_transfers matched {matched} of {2 * TRANSFER_PAIRS}")


def rows_digest(rows: Sequence[tuple[object, ...]]) -> str:
    """SHA-256 of a query's rows in a fixed order: equal for equal results, whatever order the
    query returned them in (so that a model built another way can be compared by its hash)."""
    digest = hashlib.sha256()
    for line in sorted(repr(row) for row in rows):
        digest.update(line.encode())
        digest.update(b"\n")
    return digest.hexdigest()


def build_in_child(data_dir: Path) -> dict[str, float]:
    """Build the catalog in a child process: its seconds and its peak RSS in MB."""
    done = subprocess.run(
        [sys.executable, "-c", BUILD_CHILD, str(data_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the warehouse build failed:\n{done.stderr[-3000:]}")
    measured: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return measured


def run(fills: int = FILL_COUNT, runs: int = RUNS) -> dict[str, Any]:
    """Generate a lake with `fills` fills, build its catalog, time each query `runs` times:
    the figures `--json` writes."""
    with tempfile.TemporaryDirectory(prefix="warehouse-bench-") as scratch:
        settings = Settings(data_dir=Path(scratch) / "data")
        began = time.perf_counter()
        landed = generate(Lake(settings.lake_dir), fills)
        generated = time.perf_counter() - began
        built = build_in_child(settings.data_dir)
        queries: dict[str, dict[str, Any]] = {}
        with connect(settings.data_dir) as connection:
            for name, query in QUERIES:
                samples = []
                rows: list[tuple[object, ...]] = []
                for _ in range(runs):
                    seconds, rows = timed(connection, query)
                    samples.append(seconds)
                check(name, rows, landed["fills"])
                queries[name] = {
                    "median_s": statistics.median(samples),
                    "min_s": min(samples),
                    "max_s": max(samples),
                    "rows": len(rows),
                    "rows_sha256": rows_digest(rows),
                }
                if name == "ledger":  # a count(*): the ledger's rows
                    queries[name]["count"] = rows[0][0]
    return {
        "fills": landed["fills"],
        "lake": landed,
        "generate_s": generated,
        "build_s": built["build_s"],
        "peak_rss_mb": built["peak_rss_mb"],
        "queries": queries,
    }


def report(result: Mapping[str, Any]) -> None:
    lake = ", ".join(f"{name} {rows:,}" for name, rows in result["lake"].items())
    print(
        f"lake: {lake} (generated in {result['generate_s']:.1f} s); catalog built in "
        f"{result['build_s']:.2f} s, peak RSS {result['peak_rss_mb']:.0f} MB",
        flush=True,
    )
    table = LiveTable(("query", "rows", "median s", "min s", "max s"))
    for name, timing in result["queries"].items():
        table.add(
            (
                name,
                str(timing.get("count", timing["rows"])),
                f"{timing['median_s']:.2f}",
                f"{timing['min_s']:.2f}",
                f"{timing['max_s']:.2f}",
            )
        )
    table.print_aligned()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.warehouse_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--fills", type=int, default=FILL_COUNT, help="fills in the lake")
    parser.add_argument("--runs", type=int, default=RUNS, help="timings of each query")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    options = parser.parse_args(argv)
    if options.fills < 2 or options.runs < 1:
        parser.error("--fills must be at least 2 and --runs at least 1")
    result = run(options.fills, options.runs)
    report(result)
    if options.json is not None:
        options.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
