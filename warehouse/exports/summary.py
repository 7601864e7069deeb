"""Tax summaries: the figures a return asks for, each one a sum or count over rows of the gains or
holdings export built with the same options, so that it can be traced back to them.

`tally export summary --method M --year Y` writes summary-<period>-<method>-<currency>.csv
(figure, value, unit, source, rule) and its sidecar, whose totals.figures give for every
figure its value, the file and column it comes from ("cost + fees": both summed; "-gain": the
sum negated; "date, asset": distinct pairs counted) and the rows it takes (data rows numbered
from 1 after the header, as ranges "1-4,7").

- uk, SA108 "Capital gains summary", cryptoassets: number of disposals, disposal proceeds,
  allowable costs (cost + fees, TCGA92 s.38), gains in the year before losses, losses in the
  year. A disposal is every disposal of one token on one day: HMRC treats them as a single
  disposal (TCGA92 s.105, CRYPTO22200 "same day rule", worked in CRYPTO22252), so the day's
  matched parts are netted before the gain or loss is counted (BittyTax's own report counts
  each matched part as a disposal). Losses are a positive amount, as BittyTax gives them too.
  The gains export states each part in pence (`computation`), so these are sums of pence:
  disposal proceeds, allowable costs and gains less losses are the ones BittyTax reports.
- de, Anlage SO, private Veräußerungsgeschäfte (§ 23 EStG): the taxable gain (held one year or
  less, gains and losses netted), the exempt gain (held over one year), the year's Freigrenze
  (§ 23 Abs. 3 Satz 5 EStG: 600 EUR from 2008 to 2023, 1,000 EUR from 2024) and whether it
  applies: a positive total below it stays tax-free, one at or above it is taxable in full. The
  Freigrenze counts the person's private sales of every kind, not only these accounts.
- nl, box 3 "overige bezittingen": the value of each asset held at 00:00 on 1 January in the
  Netherlands (the peildatum), accounts, staking and coins in transit together, then the totals
  of tokens, of fiat balances, and of both.
- fifo, lifo, hifo: short and long-term totals (disposals, proceeds, cost, fees, gain): long-term
  rows are those noted "long-term: held over one year" (every lot held more than one year,
  counted from the day after the acquisition as IRS Publication 544 does), short-term all other
  rows (a part with no known acquisition has no holding period: short-term).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from pipelines.tables import render
from warehouse.costbasis.exact import EXACT
from warehouse.costbasis.identified import LONG_TERM
from warehouse.costbasis.model import ZERO, Gain, Holding, is_fiat
from warehouse.exports import gains, holdings
from warehouse.exports.context import Context
from warehouse.exports.options import ExportOptionError
from warehouse.exports.text import day, plain
from warehouse.exports.writer import Export

COLUMNS = ("figure", "value", "unit", "source", "rule")
# § 23 Abs. 3 Satz 5 EStG: the year from which each Freigrenze applies (EUR).
FREIGRENZE = ((2008, Decimal(600)), (2024, Decimal(1000)))

Value = Decimal | int | bool | None


@dataclass(frozen=True)
class Figure:
    name: str
    value: Value
    unit: str  # a currency, "count" or "yes/no"
    rule: str
    file: str = ""  # "" for a figure derived from other figures
    column: str = ""
    rows: Sequence[int] = field(default_factory=tuple)

    def text(self) -> str:
        if isinstance(self.value, bool):
            return "yes" if self.value else "no"
        if self.value is None:
            return ""
        return plain(self.value)

    def source(self) -> str:
        return f"{self.file}: {self.column}" if self.file else "derived"

    def described(self) -> dict[str, object]:
        value: object = self.value
        if isinstance(self.value, Decimal):
            value = plain(self.value)
        return {
            "value": value,
            "unit": self.unit,
            "file": self.file or None,
            "column": self.column or None,
            "rows": ranges(self.rows),
            "rule": self.rule,
        }


def build(context: Context) -> Export:
    options, period = context.options, context.period
    if options.year is None:
        raise ExportOptionError("summary needs --year: the figures of one (tax) year")
    method, currency = options.method, options.currency
    if method == "uk":
        figures, wanted = _uk(context), "GBP"
    elif method == "de":
        figures, wanted = _de(context), "EUR"
    elif method == "nl":
        figures, wanted = _nl(context), "EUR"
    else:
        figures, wanted = _terms(context), ""
    warnings = [] if method == "nl" else list(context.result.warnings)
    if wanted and currency != wanted:
        warnings.append(f"the return for method {method} asks for {wanted}; these are {currency}")
    reason = gains.provisional(context)
    if reason:
        warnings.append(reason)
    stem = f"summary-{period.label}-{method}-{currency}"
    rows = tuple((f.name, f.text(), f.unit, f.source(), f.rule) for f in figures)
    return Export.one_file(
        "summary",
        stem,
        COLUMNS,
        rows,
        notes=(
            f"What the {_FORMS[method]} asks for, for {period.label} (method {method}, lots "
            f"{options.lots}, days in {period.zone}).",
            "Each figure sums or counts rows of the file named in totals.figures.<figure>.file: "
            "rows are numbered from 1 after the header; 'derived' figures follow from the others.",
        ),
        totals={"figures": {f.name: f.described() for f in figures}},
        warnings=tuple(warnings),
    )


def lines(export: Export) -> list[str]:
    """The figures as lines for the screen."""
    [table] = export.tables
    shown = []
    for name, value, unit, *_ in table.rows:
        suffix = "" if unit in ("count", "yes/no") else f" {unit}"
        shown.append((name, f"{value}{suffix}"))
    return render(shown, pad_last=False)


def freigrenze(year: int) -> Decimal | None:
    """The Freigrenze of § 23 Abs. 3 Satz 5 EStG for `year` (None before 2008)."""
    found = None
    for since, amount in FREIGRENZE:
        if year >= since:
            found = amount
    return found


def ranges(numbers: Iterable[int]) -> str:
    """1, 2, 3, 5 → "1-3,5"."""
    runs: list[list[int]] = []
    for number in sorted(set(numbers)):
        if runs and number == runs[-1][1] + 1:
            runs[-1][1] = number
        else:
            runs.append([number, number])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


# --- the methods --------------------------------------------------------------------------------


def _uk(context: Context) -> list[Figure]:
    file, rows = _gains(context)
    currency = context.options.currency
    by_disposal: dict[tuple[date, str], list[int]] = defaultdict(list)
    for number, g in rows:
        by_disposal[(g.date, g.asset)].append(number)
    gains_rows: list[int] = []
    losses_rows: list[int] = []
    gain_of = dict(rows)
    for numbers in by_disposal.values():
        net = _sum(gain_of[n].gain for n in numbers)
        if net > ZERO:
            gains_rows += numbers
        elif net < ZERO:
            losses_rows += numbers
    every = [n for n, _ in rows]
    gains_total = _sum(gain_of[n].gain for n in gains_rows)
    losses_total = EXACT.minus(_sum(gain_of[n].gain for n in losses_rows))
    return [
        Figure(
            "number_of_disposals",
            len(by_disposal),
            "count",
            "distinct (date, asset): a token's disposals of one day are one disposal (s.105)",
            file,
            "date, asset",
            every,
        ),
        Figure(
            "disposal_proceeds",
            _sum(g.proceeds for _, g in rows),
            currency,
            "sum of proceeds",
            file,
            "proceeds",
            every,
        ),
        Figure(
            "allowable_costs",
            _sum(EXACT.add(g.cost, g.fees) for _, g in rows),
            currency,
            "sum of cost + fees (acquisition cost and incidental costs of both ends)",
            file,
            "cost + fees",
            every,
        ),
        Figure(
            "gains_before_losses",
            gains_total,
            currency,
            "sum of gain over the disposals (date, asset) whose net gain is positive",
            file,
            "gain",
            gains_rows,
        ),
        Figure(
            "losses",
            losses_total,
            currency,
            "minus the sum of gain over the disposals (date, asset) whose net gain is negative",
            file,
            "-gain",
            losses_rows,
        ),
        Figure(
            "net_gain",
            EXACT.subtract(gains_total, losses_total),
            currency,
            "gains_before_losses - losses (= sum of gain)",
        ),
        Figure(
            "provisional",
            bool(gains.provisional(context)),
            "yes/no",
            "yes while the data do not reach the end of the 30 days after the tax year",
        ),
    ]


def _de(context: Context) -> list[Figure]:
    file, rows = _gains(context)
    currency = context.options.currency
    every = [n for n, _ in rows]
    taxable = _sum(g.taxable for _, g in rows)
    exempt = _sum(g.exempt for _, g in rows)
    limit = freigrenze(context.options.year or 0)
    applies = limit is not None and ZERO < taxable < limit
    income: Decimal | None = None
    if limit is not None:
        income = ZERO if applies else taxable
    return [
        Figure(
            "taxable_gain",
            taxable,
            currency,
            "sum of taxable: lots held one year or less, gains and losses netted (§ 23 EStG)",
            file,
            "taxable",
            [n for n, g in rows if g.taxable != ZERO],
        ),
        Figure(
            "exempt_gain",
            exempt,
            currency,
            "sum of exempt: lots held over one year, not taxable (§ 23 Abs. 1 Satz 1 Nr. 2 EStG)",
            file,
            "exempt",
            [n for n, g in rows if g.exempt != ZERO],
        ),
        Figure("disposals", len(every), "count", "rows of the gains file", file, "", every),
        Figure(
            "freigrenze",
            limit,
            currency,
            "§ 23 Abs. 3 Satz 5 EStG: 600 EUR 2008-2023, 1,000 EUR from 2024 (a Freigrenze, "
            "not an allowance; per person, over all private sales of the year)",
        ),
        Figure(
            "freigrenze_applies",
            applies,
            "yes/no",
            "yes when 0 < taxable_gain < freigrenze: the gains stay tax-free",
        ),
        Figure(
            "taxable_income",
            income,
            currency,
            "0 when the Freigrenze applies, else taxable_gain in full (a loss only offsets "
            "gains of § 23 EStG: § 23 Abs. 3 Sätze 7, 8)",
        ),
    ]


def _nl(context: Context) -> list[Figure]:
    file = f"{holdings.name(context)}.csv"
    currency = context.options.currency
    listed = [(number, h) for number, (h, _) in enumerate(holdings.listing(context), start=1)]
    on = holdings.holdings_day(context)
    by_asset: dict[str, list[tuple[int, Holding]]] = defaultdict(list)
    for number, h in listed:
        by_asset[h.asset].append((number, h))
    figures = []
    for asset, held in sorted(by_asset.items()):
        numbers = [n for n, _ in held]
        figures.append(
            Figure(
                f"quantity_{asset}",
                _sum(h.quantity for _, h in held),
                asset,
                f"sum of quantity held at 00:00 on {day(on)} ({context.period.zone})",
                file,
                "quantity",
                numbers,
            )
        )
        figures.append(
            Figure(
                f"value_{asset}",
                _sum(h.value for _, h in held),
                currency,
                f"sum of value at 00:00 on {day(on)}: accounts, staking, in transit",
                file,
                "value",
                numbers,
            )
        )
    tokens = [(n, h) for n, h in listed if not is_fiat(h.asset)]
    fiat = [(n, h) for n, h in listed if is_fiat(h.asset)]
    for name, part, rule in (
        ("value_tokens", tokens, "sum of value of every token (box 3: overige bezittingen)"),
        ("value_fiat", fiat, "sum of value of the fiat balances held on the exchanges"),
        ("value_total", listed, "sum of value of every row"),
    ):
        figures.append(
            Figure(
                name,
                _sum(h.value for _, h in part),
                currency,
                rule,
                file,
                "value",
                [n for n, _ in part],
            )
        )
    return figures


def _terms(context: Context) -> list[Figure]:
    file, rows = _gains(context)
    currency = context.options.currency
    figures = []
    for term, selected in (
        ("short_term", [(n, g) for n, g in rows if LONG_TERM not in g.note]),
        ("long_term", [(n, g) for n, g in rows if LONG_TERM in g.note]),
    ):
        numbers = [n for n, _ in selected]
        held = "noted" if term == "long_term" else "not noted"
        rule = f"rows {held} '{LONG_TERM}'"
        figures.append(Figure(f"{term}_disposals", len(numbers), "count", rule, file, "", numbers))
        for column in ("proceeds", "cost", "fees", "gain"):
            figures.append(
                Figure(
                    f"{term}_{column}",
                    _sum(getattr(g, column) for _, g in selected),
                    currency,
                    f"sum of {column} over the {rule}",
                    file,
                    column,
                    numbers,
                )
            )
    return figures


# --- helpers ------------------------------------------------------------------------------------

_FORMS = {
    "uk": "SA108 (Capital gains summary, cryptoassets)",
    "de": "Anlage SO (private Veräußerungsgeschäfte)",
    "nl": "box 3 return (bezittingen op 1 januari)",
    "fifo": "capital gains return (short and long term)",
    "lifo": "capital gains return (short and long term)",
    "hifo": "capital gains return (short and long term)",
}


def _gains(context: Context) -> tuple[str, list[tuple[int, Gain]]]:
    rows = [(number, g) for number, (g, _) in enumerate(gains.schedule(context), start=1)]
    return f"{gains.name(context)}.csv", rows


def _sum(values: Iterable[Decimal]) -> Decimal:
    total = ZERO
    for value in values:
        total = EXACT.add(total, value)
    return total
