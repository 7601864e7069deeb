"""The probes of the open API points (`pipelines/checks/behaviours`), against sandboxes that play
each reality.

Three sandboxes over one small world play every value of every open point between them
(`REALITIES`): each probe must name exactly the reality its sandbox plays, as `ok`, and cost what
its row states, counted by the sandbox itself (`/_sandbox/stats`), on read endpoints only. A
world whose clock stands before the account's first trade leaves nothing to settle (skip), a
config without keys skips the account's probes, a wrong secret fails them, and what fits no known
reality is a warn (shown with hand-made responses through the real parsers and matcher, since no
sandbox plays an unknown reality). The recorded 205 texts are read the way the probe reads them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import requests
from sandbox_fixtures import world_fixture
from sandbox_runtime import FAST_RETRY, ClockedWorld, sandbox_runtime

from pipelines.checks import CheckRow
from pipelines.checks.behaviours import (
    MEANINGS,
    PROBES,
    HistorySample,
    history_sample,
    probe_candles_settle,
    probe_crypto_limit,
    probe_error_text,
    probe_history_amounts,
    probe_history_ids,
    probe_json_spacing,
    probe_ohlc_before_listing,
    probe_perps,
    probe_trades_end,
    probe_trades_span,
    probe_trades_start,
    probe_withdrawal_amount,
    run_probes,
)
from pipelines.checks.behaviours.bitstamp import market_kind
from pipelines.checks.behaviours.bitvavo_errors import reason, wordings
from pipelines.checks.behaviours.bitvavo_history import amounts_evidence, ids_evidence
from pipelines.checks.behaviours.rows import decide
from pipelines.config import load_settings
from pipelines.config_file import write_config
from pipelines.exchanges.bitstamp_parse import parse_markets
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_errors import WEIGHT_HEADERS, classify_bitvavo
from pipelines.exchanges.bitvavo_match import match_history
from pipelines.exchanges.bitvavo_parse import (
    classify_history_item,
    parse_account_history,
    parse_trades,
)
from pipelines.exchanges.limits import BITSTAMP_PACING
from pipelines.exchanges.records import Fill
from pipelines.flows.runtime import Runtime
from pipelines.http import RequestBudget, WeightBudget
from pipelines.sandbox.server import Sandbox, start_sandbox
from pipelines.sandbox.variants import CHOICES, MINUTES, Variants
from pipelines.sandbox.world import World
from pipelines.sandbox_config import sandbox_document

NOW = datetime(2024, 5, 14, 16, 20, tzinfo=UTC)
SEED = 29
DAYS = 12
SETTLE = "bitvavo-candles-settle"

REALITIES = (
    Variants(),
    Variants(
        bitvavo_history_ids="own",
        bitstamp_crypto_limit="combined",
        bitvavo_trades_span="24h",
        bitvavo_trades_end="exclusive",
        bitvavo_trades_start="exclusive",
        bitstamp_ohlc_before_listing="first",
        bitstamp_perps="on",
        bitvavo_withdrawal_amount="gross",
        bitvavo_history_amounts="rounded",
        bitvavo_error_text="documented",
        bitvavo_candles_settle=30,
        bitstamp_json_spacing="spaced",
        bitvavo_json_spacing="spaced",
    ),
    Variants(
        bitvavo_history_ids="order",
        bitstamp_ohlc_before_listing="zero",
        bitvavo_withdrawal_amount="mixed",
        bitvavo_history_amounts="fee",
    ),
)

READ_ENDPOINTS = {
    "bitstamp crypto-transactions",
    "bitstamp ohlc/{pair}",
    "bitstamp markets",
    "bitvavo account/history",
    "bitvavo trades",
    "bitvavo {market}/trades",
    "bitvavo {market}/candles",
    "bitvavo withdrawalHistory",
    "bitstamp eur_usd",
    "bitvavo time",
}
"""Every endpoint a probe may touch: reads only (no order, withdrawal or key endpoint exists in
the clients, and none may be asked)."""

Served = dict[str, tuple[int, int]]  # "exchange endpoint" → (requests, weight)


def served(sandbox: Sandbox) -> Served:
    counts: Served = {}
    for side in (sandbox.bitstamp, sandbox.bitvavo):
        stats = requests.get(side.stats_url, timeout=10).json()
        for name, endpoint in stats["endpoints"].items():
            counts[f"{stats['exchange']} {name}"] = (endpoint["requests"], endpoint["weight"])
    return counts


def delta(before: Served, after: Served) -> Served:
    found = {}
    for name, (count, weight) in after.items():
        was = before.get(name, (0, 0))
        if (count, weight) != was:
            found[name] = (count - was[0], weight - was[1])
    return found


def stated(row: CheckRow) -> dict[str, tuple[int, int | None]]:
    """The requests (and weight) a row's detail says its probe sent, by exchange."""
    found = re.search(r"\(([^()]*)\)$", row.detail)
    assert found, row.detail
    spent = found.group(1).split(": ")[0]
    if spent == "no request":
        return {}
    counts: dict[str, tuple[int, int | None]] = {}
    for part in spent.split("; "):
        match = re.fullmatch(r"(?:(\w+) )?(\d+) requests?(?:, weight (\d+))?", part)
        assert match, part
        name = match.group(1) or row.subject
        counts[name] = (int(match.group(2)), int(match.group(3)) if match.group(3) else None)
    return counts


def assert_cost(row: CheckRow, sent: Served) -> None:
    """The row states exactly what the sandbox served, by exchange (Bitvavo: weight too)."""
    by_exchange: dict[str, tuple[int, int]] = {}
    for name, (count, weight) in sent.items():
        exchange = name.split(" ")[0]
        was = by_exchange.get(exchange, (0, 0))
        by_exchange[exchange] = (was[0] + count, was[1] + weight)
    claims = stated(row)
    assert set(claims) == set(by_exchange), (row.detail, sent)
    for exchange, (count, weight) in by_exchange.items():
        expected = (count, weight if exchange == "bitvavo" else None)
        assert claims[exchange] == expected, (row.detail, sent)


def reality(variants: Variants, variant: str) -> str:
    return str(getattr(variants, variant.replace("-", "_")))


def runtime(config: Path, *, environ: dict[str, str] | None = None) -> Runtime:
    return Runtime(
        load_settings(config, environ={} if environ is None else environ),
        retry=FAST_RETRY,
        clock=lambda: NOW,
        limiters={
            "bitstamp": RequestBudget(*BITSTAMP_PACING),
            "bitvavo": WeightBudget(headers=WEIGHT_HEADERS),
        },
    )


# --- every reality, named ----------------------------------------------------------------------


@dataclass
class Probed:
    variants: Variants
    sandbox: Sandbox
    rt: Runtime
    rows: dict[str, CheckRow]
    sent: dict[str, Served]  # per variant, what the sandbox served for its probe alone
    sample: HistorySample
    sample_sent: Served


world = world_fixture(seed=SEED, days=DAYS, now_ms=int(NOW.timestamp() * 1000))


@pytest.fixture(scope="module", params=REALITIES, ids=str)
def probed(
    request: pytest.FixtureRequest, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Probed]:
    """Each probe run alone on a sandbox playing `request.param`, with what it was served."""
    variants: Variants = request.param
    with start_sandbox(seed=SEED, world=world, variants=variants) as sandbox:
        rt = sandbox_runtime(sandbox, tmp_path_factory.mktemp("probes"), now=NOW)
        try:
            before = served(sandbox)
            sample = history_sample(rt)
            sample_sent = delta(before, served(sandbox))
            probes: dict[str, Callable[[], CheckRow]] = {
                "bitstamp-crypto-limit": lambda: probe_crypto_limit(rt),
                "bitstamp-ohlc-before-listing": lambda: probe_ohlc_before_listing(rt),
                "bitstamp-perps": lambda: probe_perps(rt),
                "bitvavo-history-ids": lambda: probe_history_ids(rt, sample),
                "bitvavo-history-amounts": lambda: probe_history_amounts(rt, sample),
                "bitvavo-trades-span": lambda: probe_trades_span(rt),
                "bitvavo-trades-end": lambda: probe_trades_end(rt),
                "bitvavo-trades-start": lambda: probe_trades_start(rt),
                "bitvavo-withdrawal-amount": lambda: probe_withdrawal_amount(rt),
                "bitvavo-error-text": lambda: probe_error_text(rt),
                "bitstamp-json-spacing": lambda: probe_json_spacing(rt, "bitstamp"),
                "bitvavo-json-spacing": lambda: probe_json_spacing(rt, "bitvavo"),
                SETTLE: lambda: probe_candles_settle(rt),
            }
            rows, sent = {}, {}
            for variant, probe in probes.items():
                before = served(sandbox)
                rows[variant] = probe()
                sent[variant] = delta(before, served(sandbox))
            yield Probed(variants, sandbox, rt, rows, sent, sample, sample_sent)
        finally:
            rt.close()


def test_the_sandboxes_play_every_value_of_every_open_point() -> None:
    played = {(name, reality(v, name)) for v in REALITIES for name in CHOICES}
    assert played == {(name, value) for name, values in CHOICES.items() for value in values}
    assert {v.bitvavo_candles_settle for v in REALITIES} >= {0, 30}
    # and the probes know exactly those points and values
    assert set(MEANINGS) == set(CHOICES) | set(MINUTES)
    assert all(set(MEANINGS[name]) == set(values) for name, values in CHOICES.items())
    assert sorted(p.variant for p in PROBES) == sorted(MEANINGS), "one probe per point"


@pytest.mark.parametrize("variant", sorted(CHOICES))
def test_each_probe_names_the_reality_its_sandbox_plays(probed: Probed, variant: str) -> None:
    row = probed.rows[variant]
    played = reality(probed.variants, variant)
    assert (row.check, row.subject) == (f"probe: {variant}", variant.split("-")[0])
    assert row.status == "ok", row.detail
    assert row.detail.startswith(f"{variant}={played}: {MEANINGS[variant][played]}; seen: ")
    others = [value for value in CHOICES[variant] if value != played]
    assert not any(row.detail.startswith(f"{variant}={value}:") for value in others)


def test_each_probe_costs_what_its_row_says_on_read_endpoints_only(probed: Probed) -> None:
    v = probed.variants
    # Bitstamp's server counts every request as weight 1
    expected: dict[str, Served] = {
        "bitstamp-crypto-limit": {
            "bitstamp crypto-transactions": (1, 1)
            if v.bitstamp_crypto_limit == "per-list"
            else (2, 2)
        },
        "bitstamp-ohlc-before-listing": {
            "bitstamp ohlc/{pair}": (2, 2) if v.bitstamp_ohlc_before_listing == "first" else (1, 1)
        },
        "bitstamp-perps": {"bitstamp markets": (1, 1)},
        "bitvavo-trades-span": {
            "bitvavo trades": (1, 5) if v.bitvavo_trades_span == "none" else (2, 10)
        },
        "bitvavo-trades-end": {"bitvavo {market}/trades": (2, 10)},
        "bitvavo-trades-start": {"bitvavo {market}/trades": (2, 10)},
        "bitvavo-withdrawal-amount": {
            "bitvavo withdrawalHistory": (1, 5),
            "bitvavo account/history": (1, 1),
            "bitstamp crypto-transactions": (1, 1),
        },
        "bitvavo-error-text": {"bitvavo {market}/candles": (1, 1)},
        "bitstamp-json-spacing": {"bitstamp eur_usd": (1, 1)},
        "bitvavo-json-spacing": {"bitvavo time": (1, 1)},
        SETTLE: {},
        # read by the sample they share, not by the probes themselves
        "bitvavo-history-ids": {},
        "bitvavo-history-amounts": {},
    }
    for variant, sent in probed.sent.items():
        assert sent == expected[variant], (variant, sent)
        if variant not in ("bitvavo-history-ids", "bitvavo-history-amounts"):
            assert_cost(probed.rows[variant], sent)
        assert set(sent) <= READ_ENDPOINTS
    markets = len(probed.sample.markets) + len(probed.sample.refused)
    assert 1 <= markets <= 3
    assert probed.sample_sent == {
        "bitvavo account/history": (2, 2),
        "bitvavo trades": (markets, 5 * markets),
    }
    for variant in ("bitvavo-history-ids", "bitvavo-history-amounts"):
        assert_cost(probed.rows[variant], probed.sample_sent)


def test_the_candle_settle_lag_is_not_guessed(probed: Probed) -> None:
    row = probed.rows[SETTLE]
    assert row.status == "skip"
    assert row.detail.startswith("not settled: ") and "candles_reread_minutes is 180" in row.detail
    assert probed.sent[SETTLE] == {} and stated(row) == {}


def test_run_probes_gives_every_row_once_sharing_one_history_sample(probed: Probed) -> None:
    before = served(probed.sandbox)
    rows = run_probes(probed.rt, ["bitvavo", "bitstamp"])
    sent = delta(before, served(probed.sandbox))
    assert [row.check for row in rows] == [f"probe: {p.variant}" for p in PROBES]
    for row in rows:
        alone = probed.rows[row.check.removeprefix("probe: ")]
        assert (row.status, row.detail.split(";")[0]) == (alone.status, alone.detail.split(";")[0])
    expected: dict[str, tuple[int, int]] = {}
    for part in [*probed.sent.values(), probed.sample_sent]:  # the sample read once
        for name, (count, weight) in part.items():
            was = expected.get(name, (0, 0))
            expected[name] = (was[0] + count, was[1] + weight)
    assert sent == expected
    only_bitstamp = run_probes(probed.rt, ["bitstamp"])
    assert [row.subject for row in only_bitstamp] == ["bitstamp"] * 4


# --- nothing to settle, no key, a wrong key ----------------------------------------------------


def probe_rows(rt: Runtime, exchanges: list[str]) -> dict[str, CheckRow]:
    """`run_probes` on `rt` (closed afterwards): each row by its variant's name."""
    try:
        return {row.check.removeprefix("probe: "): row for row in run_probes(rt, exchanges)}
    finally:
        rt.close()


def test_an_account_with_nothing_to_settle_skips_and_says_why(tmp_path: Path) -> None:
    clocked = ClockedWorld(seed=SEED, days=DAYS, now=NOW)
    clocked.set(datetime.fromtimestamp(clocked.history_start_ms / 1000, UTC))
    moment = clocked.move(timedelta(minutes=1))  # before the account's first trade
    with start_sandbox(seed=SEED, world=clocked) as sandbox:
        rt = sandbox_runtime(sandbox, tmp_path, now=moment)
        rows = probe_rows(rt, ["bitvavo", "bitstamp"])
    skipped = {name for name, row in rows.items() if row.status == "skip"}
    assert skipped == {
        "bitvavo-history-ids",
        "bitvavo-history-amounts",
        "bitvavo-withdrawal-amount",
        "bitstamp-crypto-limit",
        SETTLE,
    }
    assert all(rows[name].status == "ok" for name in rows.keys() - skipped)
    assert "the account's history holds no buy or sell" in rows["bitvavo-history-ids"].detail
    assert "holds no buy or sell" in rows["bitvavo-history-amounts"].detail
    assert "none of the newest 0 withdrawals" in rows["bitvavo-withdrawal-amount"].detail
    crypto = rows["bitstamp-crypto-limit"].detail
    assert "all withdrawals, which both readings page alike" in crypto  # only a 2021 one
    assert stated(rows["bitstamp-crypto-limit"]) == {"bitstamp": (2, None)}
    assert stated(rows["bitvavo-history-ids"]) == {"bitvavo": (2, 2)}  # no market to read


def test_without_keys_the_account_probes_skip_and_ask_nothing(world: World, tmp_path: Path) -> None:
    with start_sandbox(seed=SEED, world=world) as sandbox:
        document = sandbox_document(sandbox)
        for section in ("bitstamp", "bitvavo"):
            del document[section]["api_key"], document[section]["api_secret"]
        config = tmp_path / "tally.toml"
        write_config(config, document)
        rt = runtime(config)
        before = served(sandbox)
        try:
            rows = run_probes(rt, ["bitstamp", "bitvavo"])
        finally:
            rt.close()
        sent = delta(before, served(sandbox))
    private = {p.variant for p in PROBES if p.needs_key}
    assert private == {
        "bitstamp-crypto-limit",
        "bitvavo-history-ids",
        "bitvavo-history-amounts",
        "bitvavo-trades-span",
        "bitvavo-withdrawal-amount",
    }
    for row in rows:
        variant = row.check.removeprefix("probe: ")
        if variant in private:
            assert row.status == "skip" and "no API key" in row.detail, row
            assert f"{row.subject.upper()}_API_KEY" in row.fix
            assert stated(row) == {}
        elif variant != SETTLE:
            assert row.status == "ok", row
    assert set(sent) == {
        "bitstamp ohlc/{pair}",
        "bitstamp markets",
        "bitstamp eur_usd",
        "bitvavo {market}/trades",
        "bitvavo {market}/candles",
        "bitvavo time",
    }


def test_a_wrong_secret_fails_that_exchanges_account_probes_only(
    world: World, tmp_path: Path
) -> None:
    with start_sandbox(seed=SEED, world=world) as sandbox:
        secret = sandbox.bitvavo.secret
        document = sandbox_document(sandbox)
        document["bitvavo"]["api_secret"] = secret[::-1]
        assert document != sandbox_document(sandbox)
        config = tmp_path / "tally.toml"
        write_config(config, document)
        rt = runtime(config)
        rows = probe_rows(rt, ["bitstamp", "bitvavo"])
    # tally signs public requests too (the key's budget, not the IP's): every Bitvavo probe
    # that asks anything fails; Bitstamp's are untouched
    failed = {name for name, row in rows.items() if row.status == "fail"}
    assert failed == {p.variant for p in PROBES if p.exchange == "bitvavo"} - {SETTLE}
    for name in failed:
        row = rows[name]
        assert "AuthenticationError" in row.detail and "code 309" in row.detail, row.detail
        assert row.fix.startswith("check the bitvavo API key and secret"), row.fix
    assert {rows[n].status for n in rows if n.startswith("bitstamp-")} == {"ok"}


# --- what fits no known reality: a warn --------------------------------------------------------

FILL_A = "0b3a7e8e-0000-4000-8000-00000000000a"
FILL_B = "0b3a7e8e-0000-4000-8000-00000000000b"
ORDER = "5f0c1c1e-0000-4000-8000-000000000001"


def _fills() -> list[Fill]:
    rows = [
        {
            "id": fill_id,
            "orderId": ORDER,
            "timestamp": 1715680000000 + n,
            "market": "BTC-EUR",
            "side": "buy",
            "amount": amount,
            "price": price,
            "taker": True,
            "fee": fee,
            "feeCurrency": "EUR",
            "settled": True,
        }
        for n, (fill_id, amount, price, fee) in enumerate(
            ((FILL_A, "0.1", "50000", "12.5"), (FILL_B, "0.2", "50000.555", "25.0002775"))
        )
    ]
    return parse_trades(rows, account="main")


def _history(*items: dict[str, str]) -> list[Fill]:
    payload = {"items": list(items), "currentPage": 1, "totalPages": 1, "maxItems": 100}
    parsed = parse_account_history(payload, account="main")
    found = [classify_history_item(item) for item in parsed.items]
    assert all(isinstance(item, Fill) for item in found)
    return found  # type: ignore[return-value]


def _sample(items: list[Fill], fills: list[Fill]) -> HistorySample:
    links = match_history(items, fills).links
    return HistorySample(tuple(items), tuple(items), tuple(fills), links, ("BTC-EUR",), (), "(x)")


def _item(transaction_id: str, btc: str, eur: str, fee: str) -> dict[str, str]:
    return {
        "transactionId": transaction_id,
        "executedAt": "2024-05-14T09:46:40.001Z",
        "type": "buy",
        "priceCurrency": "EUR",
        "priceAmount": "50000.33",
        "sentCurrency": "EUR",
        "sentAmount": eur,
        "receivedCurrency": "BTC",
        "receivedAmount": btc,
        "feesCurrency": "EUR",
        "feesAmount": fee,
    }


def test_an_item_with_a_fills_id_that_stands_for_its_whole_order_is_a_warn() -> None:
    fills = _fills()
    quote = sum((f.quote_amount for f in fills), Decimal(0))
    assert quote == Decimal("15000.111")  # more decimals than EUR's two: exact, not rounded
    items = _history(_item(FILL_A, "0.3", "15000.111", "37.5002775"))
    sample = _sample(items, fills)
    [(_, matched, signal)] = sample.matched()
    assert {f.fill_id for f in matched} == {FILL_A, FILL_B} and signal == "amounts+id"
    row = decide("bitvavo", "bitvavo-history-ids", ids_evidence(sample), "(x)", nothing="")
    assert row.status == "warn", row
    assert "carries a fill's id yet stands for 2 fills" in row.detail
    assert row.detail.startswith("none of the known realities (fill, own, order): ")
    assert "report this row" in row.fix
    amounts = decide("bitvavo", "bitvavo-history-amounts", amounts_evidence(sample), "", nothing="")
    assert amounts.status == "ok" and amounts.detail.startswith("bitvavo-history-amounts=exact")


def test_a_quote_amount_off_by_neither_rounding_nor_fee_is_a_warn() -> None:
    fills = _fills()[:1]
    items = _history(_item(FILL_A, "0.1", "5001", "12.5"))  # 5000 exactly; fee 12.5
    sample = _sample(items, fills)
    [(_, matched, signal)] = sample.matched()
    assert signal == "id" and [f.fill_id for f in matched] == [FILL_A]
    ids = decide("bitvavo", "bitvavo-history-ids", ids_evidence(sample), "", nothing="")
    assert ids.status == "ok" and ids.detail.startswith("bitvavo-history-ids=fill:")
    row = decide("bitvavo", "bitvavo-history-amounts", amounts_evidence(sample), "", nothing="")
    assert row.status == "warn", row
    assert "shows 5001 EUR, its fills' amount × price is 5000, its fee 12.5" in row.detail


def test_items_that_fit_different_realities_are_a_warn_naming_both() -> None:
    fills = _fills()
    exact = _history(_item(FILL_A, "0.1", "5000", "12.5"))  # fits exact (and rounded)
    with_fee = _history(  # 0.2 × 50000.555 = 10000.111, + its fee 25.0002775
        {
            **_item(FILL_B, "0.2", "10025.1112775", "25.0002775"),
            "executedAt": "2024-05-14T09:46:40.002Z",
        }
    )
    sample = _sample(exact + with_fee, fills)
    evidence = amounts_evidence(sample)
    assert [sorted(fits) for fits, _ in evidence.observations] == [["exact", "rounded"], ["fee"]]
    row = decide("bitvavo", "bitvavo-history-amounts", evidence, "", nothing="")
    assert row.status == "warn"
    assert "shows 5000 EUR" in row.detail and "shows 10025.1112775 EUR" in row.detail


# --- the pieces the probes rest on -------------------------------------------------------------


def test_the_recorded_205_texts_read_as_their_wording(samples_dir: Path) -> None:
    recorded = json.loads((samples_dir / "recorded" / "bitvavo_errors.json").read_text())
    seen = []
    for entry in recorded:
        error = classify_bitvavo(400, entry["body"], endpoint="candles")
        assert error is not None
        assert reason(error) == entry["body"]["error"]
        found = wordings(error)
        if entry["body"]["errorCode"] != 205:
            assert found == [], entry
            continue
        documented = entry["_source"].startswith("docs.")
        assert found == (["documented"] if documented else ["parameter"]), entry
        seen.append(found[0])
    assert set(seen) == {"documented", "parameter"}


def test_account_history_asks_for_one_type_when_told(world: World, tmp_path: Path) -> None:
    with start_sandbox(seed=SEED, world=world) as sandbox:
        rt = sandbox_runtime(sandbox, tmp_path, now=NOW)
        client = rt.client_as("bitvavo", BitvavoClient)
        start = NOW - timedelta(days=DAYS + 1)
        try:
            every, _ = client.account_history(from_date=start, to_date=NOW)
            withdrawals, pages = client.account_history(
                from_date=start, to_date=NOW, kind="withdrawal"
            )
        finally:
            rt.close()
    assert withdrawals.params["type"] == "withdrawal" and "type" not in every.params
    assert pages == 1
    kinds = {item.type for item in every.records}
    assert len(kinds) > 1, "the unfiltered page holds other types"
    assert [i.transaction_id for i in withdrawals.records] == [
        i.transaction_id for i in every.records if i.type == "withdrawal"
    ]
    assert withdrawals.records


def test_the_recorded_market_lists_read_as_spot_and_a_perpetual_as_its_own_kind(
    samples_dir: Path,
) -> None:
    recorded = samples_dir / "recorded"
    for name in ("bitstamp_markets__ccxt_comment.json", "bitstamp_trading_pairs_info_legacy.json"):
        markets = parse_markets(json.loads((recorded / name).read_text()))
        assert markets and {market_kind(m) for m in markets} == {"SPOT"}, name
    (row,) = json.loads((recorded / "bitstamp_markets__ccxt_comment.json").read_text())
    perp = {**row, "market_symbol": "btcusd-perp", "market_type": "PERPETUAL"}
    future = {**row, "market_symbol": "btcusd-0628", "market_type": "futures"}
    kinds = [market_kind(m) for m in parse_markets([row, perp, future])]
    assert kinds == ["SPOT", "PERPETUAL", "FUTURES"]
    untyped = {k: v for k, v in perp.items() if k != "market_type"}
    assert [market_kind(m) for m in parse_markets([untyped])] == ["PERPETUAL"]
