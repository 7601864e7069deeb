"""Analytics over the lake: DuckDB views in `data/warehouse.duckdb`, rebuilt by `tally warehouse`.

The views (`sql/NNN_name.sql`, created in that order):

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
- `fill_checks`: per fill, price × amount against the quote amount, the fee against the schedule
  in force, duplicates, orphans, and Bitvavo account/history items that fit it ambiguously.

Modules: `sources` (view files, binding them to a lake), `build` (the atomic rebuild),
`connect` (read-only connections), `output` (query results as text), `reconcile` (the verdict).
The warehouse reads the lake only: it never imports `pipelines.exchanges`.
"""
