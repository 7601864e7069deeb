"""A key or secret in `tally.toml` of the wrong shape is refused without showing any part of it:
not in `load_settings`'s lines, not on `tally config`'s stderr, not in `tally doctor`'s table."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.config import ConfigError, load_settings

SECRET = "Zq81VwXk37PtLm"  # the text each shape below hides somewhere
NUMBER = "918273645"
SHAPES = {
    "list": f'["{SECRET}"]',
    "nested list": f'[1, ["{SECRET}"]]',
    "number": NUMBER,
    "float": f"{NUMBER}.5",
    "table": f'{{ value = "{SECRET}" }}',
    "text with a space": f'"{SECRET} {SECRET}"',
    "text with a line break": f'"""{SECRET}\n{SECRET}"""',
    "text with a tab": f'"{SECRET}\\t"',
}


def fragments(secret: str, size: int = 4) -> set[str]:
    """Every run of `size` characters of `secret`: none may appear."""
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def assert_hidden(text: str) -> None:
    for fragment in fragments(SECRET) | fragments(NUMBER):
        assert fragment not in text, f"{fragment!r} of the secret shown in {text!r}"


@pytest.mark.parametrize("half", ["api_key", "api_secret"])
@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_a_secret_of_the_wrong_shape_is_refused_and_never_shown(
    tmp_path: Path, shape: str, half: str
) -> None:
    path = tmp_path / "tally.toml"
    path.write_text(f"[bitvavo]\n{half} = {shape}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    (line,) = raised.value.lines
    assert line.startswith(f"{path}: [bitvavo] {half} = (")
    assert "not shown" in line and "without spaces" in line
    assert_hidden(line.removeprefix(str(path)))


@pytest.mark.parametrize("command", ["config", "doctor"])
def test_tally_config_and_doctor_never_show_the_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    path = tmp_path / "tally.toml"
    path.write_text(
        f"[bitstamp]\napi_key = {SHAPES['number']}\napi_secret = {SHAPES['list']}\n",
        encoding="utf-8",
    )
    assert main([command, "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    shown = (out + err).replace(str(path), "")
    assert "api_key" in shown and "api_secret" in shown
    assert_hidden(shown)


def test_a_good_secret_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "tally.toml"
    path.write_text(f'[bitvavo]\napi_key = "{SECRET}"\napi_secret = "{SECRET}x"\n')
    credentials = load_settings(path, environ={}).exchange("bitvavo").load_credentials()
    assert credentials is not None
    assert credentials.secret.reveal() == f"{SECRET}x"
