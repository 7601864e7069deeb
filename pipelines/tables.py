"""Plain text tables: every table tally prints, rendered by one function.

Columns are padded to their widest cell and set two spaces apart; no borders, no colours, no
wrapping, so that the output is the same in a terminal, a pipe and a test. `render` covers the
variations the commands use: right-aligned columns (numbers), columns of a fixed width (a cell
wider than that is written whole, unpadded), a last column written as is, and trailing spaces
stripped. It imports nothing from tally, so both `pipelines` and `warehouse` may use it.
A `LiveTable` prints each row as it comes, then the whole table aligned (the benchmarks).

    >>> print("\\n".join(render([("stream", "rows"), ("candles", "239")], right={1})))
    stream   rows
    candles   239
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

GAP = "  "
"""Between two columns."""


def widths(rows: Sequence[Sequence[str]], fixed: Mapping[int, int] | None = None) -> list[int]:
    """Each column's width: its widest cell, or the width `fixed` gives it."""
    if not rows:
        return []
    given = fixed or {}
    return [
        given[column] if column in given else max(len(row[column]) for row in rows)
        for column in range(len(rows[0]))
    ]


def offset(column_widths: Sequence[int], column: int) -> int:
    """Where `column` starts on a line, in characters."""
    return sum(column_widths[:column]) + len(GAP) * column


def rule(column_widths: Sequence[int]) -> str:
    """A line of dashes under each column, e.g. below a header."""
    return GAP.join("-" * width for width in column_widths)


def render(
    rows: Sequence[Sequence[str]],
    *,
    right: Collection[int] = (),
    fixed: Mapping[int, int] | None = None,
    pad_last: bool = True,
    strip: bool = False,
) -> list[str]:
    """The rows (header included, if any) as aligned lines.

    `right`: the columns aligned right (the others left); `fixed`: column -> width, instead of
    the widest cell; `pad_last=False` writes the last column without padding; `strip` removes
    trailing spaces from each line.
    """
    column_widths = widths(rows, fixed)
    last = len(column_widths) - 1
    lines = []
    for row in rows:
        cells = [
            cell
            if column == last and not pad_last
            else (cell.rjust(width) if column in right else cell.ljust(width))
            for column, (cell, width) in enumerate(zip(row, column_widths, strict=True))
        ]
        line = GAP.join(cells)
        lines.append(line.rstrip() if strip else line)
    return lines


class LiveTable:
    """A table shown while it grows: `add` prints each row at once, its cells `GAP` apart
    (unaligned: the widths are not known yet); `print_aligned` prints the whole table, header
    included, as `render` aligns it, after an empty line."""

    def __init__(self, header: Sequence[str]) -> None:
        self.rows: list[Sequence[str]] = [header]

    def add(self, row: Sequence[str]) -> None:
        self.rows.append(row)
        print(GAP.join(row), flush=True)

    def print_aligned(self) -> None:
        print()
        for line in render(self.rows):
            print(line)
