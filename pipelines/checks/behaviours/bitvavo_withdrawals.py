"""Probe of where a Bitvavo withdrawal's fee is (`bitvavo-withdrawal-amount`).

Reads the newest page of withdrawalHistory (1 request, weight 5) and of `/account/history`
withdrawals (1 request, weight 1) and, when the Bitstamp account is probed too and has a key,
the newest page of Bitstamp crypto-transactions (1 request), whose deposits carry txids. Every
Bitvavo withdrawal with a fee in its own asset is judged twice:

- where it reached the Bitstamp account (a deposit with the same txid and asset): arriving with
  its amount fits `net`; with amount − fee, `gross` and `mixed` (withdrawalHistory has the fee
  inside in both);
- against its `/account/history` item (same asset, same address where both show one, the
  nearest within `NEAR`): the same amount fits `net` and `gross`; amount − fee, `mixed`.

Without a withdrawal that reached Bitstamp, `net` and `gross` cannot be told apart.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice

from pipelines.checks import CheckRow
from pipelines.checks.behaviours.probe import Probe
from pipelines.checks.behaviours.realities import Evidence
from pipelines.checks.behaviours.rows import Spend, decide, has_key, unsettled
from pipelines.exchanges.bitstamp import CRYPTO_PAGE, BitstampClient
from pipelines.exchanges.bitstamp_adapter import BITSTAMP
from pipelines.exchanges.bitvavo import BitvavoClient
from pipelines.exchanges.bitvavo_adapter import BITVAVO
from pipelines.exchanges.bitvavo_parse import classify_history_item
from pipelines.exchanges.records import Transfer
from pipelines.flows.runtime import Runtime

EXCHANGE = BITVAVO.name
VARIANT = "bitvavo-withdrawal-amount"
HISTORY_FROM = datetime(2018, 1, 1, tzinfo=UTC)  # before Bitvavo's launch: every withdrawal
NEAR = timedelta(hours=1)
FIX = (
    "nothing to do; it is settled once a Bitvavo withdrawal with a fee reaches your Bitstamp "
    "account (with its key configured)"
)


def probe_withdrawal_amount(rt: Runtime, *, other_account: bool = True) -> CheckRow:
    """`other_account`: whether the Bitstamp account may be read for the txids that reached it."""
    spend = Spend()
    client = spend.use(rt.client_as(EXCHANGE, BitvavoClient))
    now = rt.now()
    pages = list(islice(client.withdrawal_history(start=HISTORY_FROM, end=now), 1))
    withdrawals = [w for page in pages for w in page.records]
    charged = [w for w in withdrawals if w.fee and w.fee > 0 and w.fee_asset in (None, w.asset)]
    if not charged:
        why = f"none of the newest {len(withdrawals)} withdrawals had a fee in its own asset"
        return unsettled(EXCHANGE, VARIANT, why, spend, FIX)
    page, _ = client.account_history(from_date=HISTORY_FROM, to_date=now, kind="withdrawal")
    listed = [t for i in page.records if isinstance(t := classify_history_item(i), Transfer)]
    arrived: dict[str, Transfer] = {}
    if other_account and has_key(rt, BITSTAMP.name):
        bitstamp = spend.use(rt.client_as(BITSTAMP.name, BitstampClient))
        crypto = bitstamp.crypto_transactions(offset=0, limit=CRYPTO_PAGE)
        for row in crypto.records:
            if isinstance(row, Transfer) and row.kind == "deposit" and row.txid:
                arrived[_txid(row.txid)] = row
    evidence = Evidence()
    taken: set[str] = set()
    for withdrawal in charged:
        fee = withdrawal.fee or Decimal(0)
        named = _describe(withdrawal)
        deposit = arrived.get(_txid(withdrawal.txid)) if withdrawal.txid else None
        if deposit is not None and deposit.asset == withdrawal.asset:
            got = f"{named} arrived on Bitstamp as {deposit.amount.normalize():f}"
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
        f"none of the {len(charged)} withdrawals with a fee reached the Bitstamp account or "
        "has an /account/history item"
    )
    return decide(EXCHANGE, VARIANT, evidence, spend, nothing=nothing, fix=FIX)


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
        lambda r: probe_withdrawal_amount(r.rt, other_account=BITSTAMP.name in r.exchanges),
    ),
)
