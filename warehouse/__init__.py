"""Analytics over the lake: DuckDB models in `data/warehouse.duckdb`, built by `tally warehouse`.

The models (`sql/NNN_name.sql`, created in that order; `sql/models.toml` says which are stored
as tables, and each one's key):

- `candles`, `public_trades`: the lake's rows, one per key, the newest fetch winning;
- `coverage`: per stream, rows, time range and landed windows, and every gap with its reason;
- `fills`: both accounts' fills in one shape (Bitvavo app trades included, once);
- `transfers`: deposits and withdrawals, once, matched across the exchanges' two listings;
- `ledger`: every balance movement, signed, with its kind and source row;
- `balances_computed`: the running balance after every ledger row;
- `reconcile_balances`: reported against computed balances, exact difference, and where a
  mismatch came from;
- `prices`: an hourly EUR valuation series per asset, with its source and staleness;
- `internal_transfers`: a withdrawal on one account matched to its deposit on the other (txid
  first, then amount and time), and every transfer that matched nothing;
- `fees`: every fee that moved a balance, per account, asset, market and month, in its own asset
  and in EUR at the time it was charged;
- `fill_check_quote`, `fill_check_fee`, `fill_check_duplicate`, `fill_check_orphan`,
  `fill_check_history`: per fill, one check each: price × amount against the quote amount, the
  fee against the schedule in force, duplicates, orphans, and Bitvavo account/history items
  that fit it ambiguously;
- `fill_checks`: per fill, the five checks' figures and verdict.

Modules: `sources` (model files, binding them to a lake), `staging` (the lake's rows loaded,
incrementally), `contracts` (each model's declared key and not-null columns), `build` (the
atomic, incremental build),
`connect` (read-only connections), `output` (query results as text), `reconcile` (the verdict).
The warehouse reads the lake only: it never imports `pipelines.exchanges`.
"""
