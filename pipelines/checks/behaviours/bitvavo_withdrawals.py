"""Probe of where a Bitvavo withdrawal's fee is (`bitvavo-withdrawal-amount`).

Reads the newest page of withdrawalHistory (1 request, weight 5) and of `/account/history`
withdrawals (1 request, weight 1) and, of every other exchange that is probed too, has a key
and declares its recent deposits (`ExchangeChecks.recent_deposits`: Bitstamp's newest page of
crypto-transactions, 1 request), those deposits with their txids. Every Bitvavo withdrawal with
a fee in its own asset is judged twice:

- where it reached another account (a deposit with the same txid and asset): arriving with its
  amount fits `net`; with amount − fee, `gross` and `mixed` (withdrawalHistory has the fee
  inside in both);
- against its `/account/history` item (same asset, same address where both show one, the
  nearest within `NEAR`): the same amount fits `net` and `gross`; amount − fee, `mixed`.

Without a withdrawal that reached another account, `net` and `gross` cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide, has_key, unsettled
from pipelines.exchanges.adapter import Exchange
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_parse import classify_history_item
from pipelines.exchanges.records import Transfer
from pipelines.exchanges.registry import EXCHANGES
from pipelines.flows.runtime import Runtime

EXCHANGE = BITVAVO.name
VARIANT = "bitvavo-withdrawal-amount"
HISTORY_FROM = datetime(2018, 1, 1, tzinfo=UTC)  # before Bitvavo's launch: every withdrawal
NEAR = timedelta(hours=1)


def _elsewhere() -> list[Exchange[Any]]:
    """The other exchanges whose recent deposits can show a withdrawal arriving."""
    return [
        adapter
        for adapter in EXCHANGES.values()
        if adapter is not BITVAVO and adapter.checks.recent_deposits is not None
    ]


def _accounts() -> str:
    """The other accounts, as the row's text names them: "Bitstamp"."""
    return " or ".join(adapter.title for adapter in _elsewhere())


def probe_withdrawal_amount(rt: Runtime, *, others: Collection[str] | None = None) -> CheckRow:
    """`others`: the exchanges that may be read for the txids that reached them (None: all)."""
    fix = (
        "nothing to do; it is settled once a Bitvavo withdrawal with a fee reaches your "
        f"{_accounts()} account (with its key configured)"
    )
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    pages = list(islice(client.withdrawal_history(start=HISTORY_FROM, end=now), 1))
    withdrawals = [w for page in pages for w in page.records]
    charged = [w for w in withdrawals if w.fee and w.fee > 0 and w.fee_asset in (None, w.asset)]
    if not charged:
        why = f"none of the newest {len(withdrawals)} withdrawals had a fee in its own asset"
        return unsettled(EXCHANGE, VARIANT, why, spend, fix)
    page, _ = client.account_history(from_date=HISTORY_FROM, to_date=now, kind="withdrawal")
    listed = [t for i in page.records if isinstance(t := classify_history_item(i), Transfer)]
    arrived: dict[str, tuple[Transfer, str]] = {}  # txid → the deposit, where it arrived
    for other in _elsewhere():
        read = other.checks.recent_deposits
        asked = others is None or other.name in others
        if read is not None and asked and has_key(rt, other.name):
            for row in read(spend.use(rt.client(other.name))):
                arrived[_txid(row.txid)] = (row, other.title)
    evidence = Evidence()
    taken: set[str] = set()
    for withdrawal in charged:
        fee = withdrawal.fee or Decimal(0)
        named = _describe(withdrawal)
        found = arrived.get(_txid(withdrawal.txid)) if withdrawal.txid else None
        if found is not None and found[0].asset == withdrawal.asset:
            deposit, where = found
            got = f"{named} arrived on {where} as {deposit.amount.normalize():f}"
            if deposit.amount == withdrawal.amount:
                evidence.add({"net"}, f"{got}, its amount")
            elif deposit.amount == withdrawal.amount - fee:
                evidence.add({"gross", "mixed"}, f"{got}, its amount − fee")
            else:
                evidence.add((), f"{got}, neither its amount nor amount − fee")
        item = _history_item(withdrawal, listed, taken)
        if item is not None:
            got = f"{named} is {item.amount.normalize():f} in /account/history"
            if item.amount == withdrawal.amount:
                evidence.add({"net", "gross"}, f"{got} too")
            elif item.amount == withdrawal.amount - fee:
                evidence.add({"mixed"}, f"{got}, amount − fee")
            else:
                evidence.add((), f"{got}, neither the same amount nor amount − fee")
    nothing = (
        f"none of the {len(charged)} withdrawals with a fee reached the {_accounts()} account or "
        "has an /account/history item"
    )
    return decide(EXCHANGE, VARIANT, evidence, spend, nothing=nothing, fix=fix)


def _history_item(
    withdrawal: Transfer, listed: Sequence[Transfer], taken: set[str]
) -> Transfer | None:
    """The nearest `/account/history` withdrawal within `NEAR` that can be this one."""
    fitting = [
        item
        for item in listed
        if item.transfer_id not in taken
        and item.asset == withdrawal.asset
        and abs(item.executed_at - withdrawal.executed_at) <= NEAR
        and (
            item.address is None or withdrawal.address is None or item.address == withdrawal.address
        )
    ]
    if not fitting:
        return None
    item = min(fitting, key=lambda i: abs(i.executed_at - withdrawal.executed_at))
    taken.add(item.transfer_id)
    return item


def _txid(txid: str | None) -> str:
    return "".join((txid or "").split()).lower()


def _describe(withdrawal: Transfer) -> str:
    return (
        f"the withdrawal of {withdrawal.amount.normalize():f} {withdrawal.asset} (fee "
        f"{(withdrawal.fee or Decimal(0)).normalize():f}) at {withdrawal.executed_at.isoformat()}"
    )


PROBES = (
    Probe(
        VARIANT,
        BITVAVO,
        True,
        lambda r: probe_withdrawal_amount(r.rt, others=r.exchanges),
    ),
)
