"""The cheaper helpers of the prices view give what the ones they stand in for give, exactly."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.sources import macro_files

CLOSES = [
    "0",
    "0.000000000000499999",
    "0.000000000000500000",
    "0.000000000001499999",
    "1.120150000000000000",
    "0.778430000000000000",
    "102766.123456789012345678",
    "-0.000000000000500000",
    "-1.5",
    "9999999999999.999999999999500000",
]


@pytest.fixture
def connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    for macros in macro_files():
        connection.execute(macros.text)
    connection.execute("create table closes (x decimal(38, 18))")
    connection.executemany("insert into closes values (?)", [[close] for close in CLOSES])
    return connection


def differing(connection: duckdb.DuckDBPyConnection, fast: str, slow: str) -> list[tuple]:
    return connection.execute(
        f"select x, {fast}, {slow} from closes where ({fast}) is distinct from ({slow})"
    ).fetchall()


def test_integers_read_from_text_are_those_of_the_arithmetic(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    assert differing(connection, "close_units_of_text(x)", "close_units(x)") == []
    assert differing(connection, "decimal_units_of_text(x)", "decimal_units(x)") == []
    assert (
        differing(connection, "close_quotient(1, 1120150000000)", "inverted_close(1120150000000)")
        == []
    )


@pytest.mark.parametrize("zone", ["UTC", "Etc/UTC", "Europe/Amsterdam", "America/New_York"])
def test_timestamptz_difference_is_the_minus_of_the_session(
    connection: duckdb.DuckDBPyConnection, zone: str
) -> None:
    connection.execute(f"set TimeZone = '{zone}'")
    # hours to 400 days apart, across the spring and autumn clock changes
    result = connection.execute(
        "with moments as (select a, a - to_seconds(s) as b"
        " from range(0, 400 * 86400, 7 * 86400 + 3599) as r(s),"
        " (values (timestamptz '2024-03-31 00:30:00+00'), (timestamptz '2023-10-29 02:00:00+00'))"
        " as t(a))"
        " select count(*), count(*) filter ("
        "     where timestamptz_difference(a, b)::varchar <> (a - b)::varchar"
        " ) from moments"
    ).fetchone()
    assert result is not None
    compared, unequal = result
    assert compared > 100
    assert unequal == 0
