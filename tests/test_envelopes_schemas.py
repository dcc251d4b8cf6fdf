"""The committed JSON Schemas match the code, and the golden examples match both."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

from gitstore_agents.cli import main
from gitstore_agents.envelopes import (
    SCHEMA_TYPES,
    EnvelopeError,
    canonical_json,
    decode,
    schema_files,
    stale_schemas,
)

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
EXAMPLES = SCHEMAS / "examples"
TYPES = {t.__name__: t for t in SCHEMA_TYPES}
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def _type_of(example: Path) -> type[msgspec.Struct]:
    return TYPES[example.name.split(".")[0]]


def _validator(type_name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / f"{type_name}.json").read_text())
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def _kept(original: Any, decoded: Any, path: str = "$") -> None:
    """Every value of ``original`` is in ``decoded``: decoding dropped or changed nothing."""
    if isinstance(original, dict):
        assert isinstance(decoded, dict), path
        for key, value in original.items():
            assert key in decoded, f"{path}.{key} was dropped by decoding"
            _kept(value, decoded[key], f"{path}.{key}")
    elif isinstance(original, list):
        assert isinstance(decoded, list), path
        assert len(original) == len(decoded), path
        for index, (a, b) in enumerate(zip(original, decoded, strict=True)):
            _kept(a, b, f"{path}[{index}]")
    else:
        assert original == decoded, path


def test_committed_schemas_match_the_code() -> None:
    stale = stale_schemas(SCHEMAS)
    assert not stale, (
        f"schemas/ drifted from the Structs: {stale}; run `gitstore-agents schema export schemas`"
    )
    committed = {p.name for p in SCHEMAS.glob("*.json")}
    assert committed == set(schema_files()), "schemas/ holds files the code does not export"


def test_every_schema_is_a_valid_json_schema() -> None:
    for path in SCHEMAS.glob("*.json"):
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text()))


def test_every_exported_type_has_a_golden_example() -> None:
    assert {_type_of(p).__name__ for p in EXAMPLE_FILES} == set(TYPES)


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.name)
def test_golden_example_validates_and_decodes_without_loss(example: Path) -> None:
    type_ = _type_of(example)
    data = example.read_bytes()
    original = json.loads(data)
    errors = [e.message for e in _validator(type_.__name__).iter_errors(original)]
    assert not errors, errors
    decoded = decode(data, type_)
    _kept(original, json.loads(canonical_json(decoded)))


def test_schemas_and_decoder_agree_on_a_bad_value() -> None:
    """The same rule lives in both: a Go validator refuses what the worker refuses."""
    event = json.loads((EXAMPLES / "GitEvent.handwritten.json").read_text())
    event["blobs"][0]["path"] = "products/../secrets.md"
    assert list(_validator("GitEvent").iter_errors(event))
    with pytest.raises(EnvelopeError):
        decode(json.dumps(event).encode(), TYPES["GitEvent"])


def test_schema_export_command_writes_and_checks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "schemas"
    assert main(["schema", "export", "--check", str(target)]) == 1
    assert main(["schema", "export", str(target)]) == 0
    assert {p.name for p in target.glob("*.json")} == set(schema_files())
    assert main(["schema", "export", "--check", str(target)]) == 0
    (target / "GitEvent.json").write_text("{}")
    capsys.readouterr()
    assert main(["schema", "export", "--check", str(target)]) == 1
    assert "GitEvent.json" in capsys.readouterr().out
