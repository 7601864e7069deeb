"""`pipelines.atomic`: a file is replaced whole or left as it was, and no temp file stays."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from pipelines.atomic import temp_path, write_text, write_with


def test_a_write_replaces_the_file_whole_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "note.json"
    write_text(target, "first")
    write_text(target, "second, longer")
    assert target.read_text(encoding="utf-8") == "second, longer"
    assert sorted(p.name for p in target.parent.iterdir()) == ["note.json"]


def test_a_write_that_fails_leaves_the_old_file_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "note.json"
    write_text(target, "kept")

    def half_then_fail(handle: BinaryIO) -> None:
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_with(target, half_then_fail)
    assert target.read_text(encoding="utf-8") == "kept"
    assert [p.name for p in tmp_path.iterdir()] == ["note.json"]


def test_temp_names_are_hidden_and_end_in_tmp(tmp_path: Path) -> None:
    target = tmp_path / "x.parquet"
    assert temp_path(target, "123").name == ".x.parquet.123.tmp"
    random = temp_path(target).name
    assert random.startswith(".x.parquet.") and random.endswith(".tmp")
    assert random != temp_path(target).name
