"""The written-out dataset definitions (`pipelines.lake_datasets`, read by the warehouse) and the
record classes that feed them (`pipelines.datasets`) cannot drift apart: every column a record
produces is defined, with the same type, in the same order, and nothing else is."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest

from pipelines import datasets, lake_datasets
from pipelines.datasets import RecordDataset, record_schema
from pipelines.lake import MONEY, TIMESTAMP, Dataset


@pytest.mark.parametrize("name", sorted(lake_datasets.ALL))
def test_a_datasets_columns_are_what_its_record_class_produces(name: str) -> None:
    source = datasets.ALL[name]
    assert source.dataset is lake_datasets.ALL[name]
    defined = source.dataset.schema
    derived = record_schema(source.record)
    assert list(defined) == list(derived)
    for column, dtype in derived.items():
        assert defined[column] == dtype, f"{name}.{column}: {defined[column]} vs {dtype}"


def test_every_defined_dataset_is_fed_by_a_record_class() -> None:
    assert set(datasets.ALL) == set(lake_datasets.ALL)
    assert len({source.record for source in datasets.ALL.values()}) == len(datasets.ALL)


def test_a_field_the_definition_lacks_shows_as_drift() -> None:
    @dataclass(frozen=True)
    class Grown:
        exchange: str
        price: Decimal
        at: datetime
        new_field: str

    written = Dataset(
        "grown", {"exchange": pl.String(), "price": MONEY, "at": TIMESTAMP}, key=("exchange",)
    )
    derived = record_schema(Grown)
    assert list(derived) == ["exchange", "price", "at", "new_field", "fetched_at"]
    assert list(written.schema) != list(derived)
    # ... which is why the check matters: a frame silently keeps only the defined columns.
    frame = RecordDataset(written, Grown).frame(
        [Grown("x", Decimal("1.5"), datetime(2024, 1, 1, tzinfo=UTC), "kept?")]
    )
    assert frame.columns == ["exchange", "price", "at"]
