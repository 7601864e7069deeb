"""What differs between exchanges in the views, as data: the table `staging.exchange_rules`.

The views never compare an exchange's name: they join this table, one row per exchange, which
`warehouse.build.build` writes from the rules the pipelines hand it (each exchange's adapter
declares its `ExchangeRules`; `pipelines.exchanges.registry.warehouse_rules()` collects them).
A dataset in a rule (`raw_ledger`) is named as the lake names it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import astuple, dataclass, fields

import duckdb

TABLE = "staging.exchange_rules"


@dataclass(frozen=True)
class ExchangeRules:
    """One exchange's data rules, as the views read them (see each view file for the meaning)."""

    # transfers: the balance-moving listing (None: every source but the secondary ones) and the
    # other listing of the same transfers, matched to it
    primary_transfer_sources: tuple[str, ...] | None
    secondary_transfer_sources: tuple[str, ...]
    # the secondary listing may show any transfer's amount less its fee
    secondary_net_of_fee: bool
    # the secondary listing may show a withdrawal's amount with its fee on either side
    secondary_withdrawal_fee_either_side: bool
    # a secondary row without a primary one still moved the balance
    unmatched_secondary_in_ledger: bool
    # a withdrawal's fee is inside its amount, per the recorded ledger identity (else: decided
    # from the account's own txid evidence)
    withdrawal_fee_inside_recorded: bool
    # its raw ledger dataset: every item the exchange's own ledger listed
    raw_ledger: str
    # the balance ledger is its raw ledger's rows, fills among them (else: assembled from fills,
    # transfers and other events; a fill is then matched to the raw ledger's items)
    raw_ledger_is_balance_ledger: bool
    # its candles leave hours without trades out (a hole inside landed data is reported)
    candles_skip_quiet_hours: bool
    # the markets whose closes are the EUR-USD / GBP-EUR rates
    fx_markets: tuple[str, ...]
    # its EUR closes are the first price of an asset (else: second to a USD close via EUR-USD)
    eur_prices_first: bool
    # its USD closes price an asset, in EUR through the EUR-USD rate
    usd_prices: bool
    # per fill source, how the quote amount is checked: 'exact' or 'leg rounded' (any other
    # source: 'quote rounded')
    exact_quote_sources: tuple[str, ...]
    leg_rounded_quote_sources: tuple[str, ...]
    # the raw fill names its quote amount by the quote currency's key
    quote_keyed_by_currency: bool
    # fill sources whose fee is not checked against the schedule
    fee_unchecked_sources: tuple[str, ...]


# the fields' annotations, as written (annotations are postponed: they are text)
_TYPES = {
    "bool": "boolean",
    "str": "varchar",
    "tuple[str, ...]": "varchar[]",
    "tuple[str, ...] | None": "varchar[]",
}


def write(connection: duckdb.DuckDBPyConnection, rules: Mapping[str, ExchangeRules]) -> None:
    """Create `staging.exchange_rules`: one row per exchange of `rules`, in their order."""
    if not rules:
        raise ValueError("no exchange rules: the views need one row per exchange")
    columns = ["exchange varchar primary key"]
    columns += [f"{f.name} {_TYPES[str(f.type)]}" for f in fields(ExchangeRules)]
    connection.execute(f"create table {TABLE} ({', '.join(columns)})")
    marks = ", ".join("?" for _ in range(len(columns)))
    connection.executemany(
        f"insert into {TABLE} values ({marks})",
        [[name, *(_value(v) for v in astuple(r))] for name, r in rules.items()],
    )


def _value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
