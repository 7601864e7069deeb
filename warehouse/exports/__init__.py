"""Exports for accountants and tax tools, from the warehouse and the cost-basis engine.

    from warehouse.exports.run import export
    export(connection, ["gains", "koinly"], ExportOptions(year=2024), Path("data/exports"))

Formats, one module each: `ledger` (every balance movement, valued), `gains` (the disposal
schedule), `income` (rewards), `holdings` (balances and values on a day), `koinly` (Koinly's
universal CSV, one file per account), `cointracking` (CoinTracking's CSV import), `bittytax`
(BittyTax transaction records with every value filled in). Every export is written with a
sidecar `<name>.json` stating its currency, method, period and files (`writer`); the same lake
always gives byte-identical files. Shared pieces: `options` (what was asked, the period in the
method's calendar), `context` (what the formats read, loaded once), `transactions` (the ledger
regrouped per source row), `pricing` and `valuation` (values in the reporting currency, as the
engine prices them), `text` (how numbers and times are written), `run` (build, then write).
"""
