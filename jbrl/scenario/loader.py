"""Load scenarios from an embedded name, a YAML file or a JellyBean optimizer-inputs directory.

Every failure becomes an :class:`~jbrl.errors.InputError` naming the file, the field and the
value, so the command line can print one paragraph and exit 2.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from jbrl.documents import load_document, parse_json, parse_yaml
from jbrl.errors import InputError, Param
from jbrl.scenario.model import Scenario

EMBEDDED_PACKAGE = "jbrl.configs"
EMBEDDED_DIR = "scenarios"
DEFAULT_SCENARIO = "vqa"

# Pydantic adds the name of a union member to an error's location; these are not field names.
_TYPE_TAG = re.compile(
    r"^(str|int|float|bool|dict|list|none|constrained-str|constrained-float|"
    r"function-.*|.*\[.*\])$"
)


def embedded_scenarios() -> list[str]:
    """Names of the scenarios shipped inside the package."""
    root = resources.files(EMBEDDED_PACKAGE) / EMBEDDED_DIR
    if not root.is_dir():
        return []
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def embedded_scenario_text(name: str) -> str:
    return (resources.files(EMBEDDED_PACKAGE) / EMBEDDED_DIR / f"{name}.yaml").read_text("utf-8")


def is_jellybean_dir(path: Path) -> bool:
    return path.is_dir() and (path / "logical_graph.csv").is_file()


def load_scenario(spec: str | Path) -> Scenario:
    """Load ``spec``: a JellyBean inputs directory, a YAML file, or an embedded scenario name."""
    path = Path(spec)
    if path.is_dir():
        if not is_jellybean_dir(path):
            raise InputError(
                "a scenario directory must hold JellyBean optimizer inputs (logical_graph.csv "
                "and the files beside it)",
                file=str(path),
            )
        from jbrl.scenario.jellybean import import_jellybean

        return import_jellybean(path)
    if path.is_file():
        return load_scenario_file(path)
    names = embedded_scenarios()
    if str(spec) in names:
        return scenario_from_text(embedded_scenario_text(str(spec)), f"<embedded {spec}>")
    if path.suffix in (".yaml", ".yml", ".json") or "/" in str(spec):
        raise InputError("no such file", file=str(spec))
    raise InputError(
        f"no such file, directory or embedded scenario (embedded: {', '.join(names) or 'none'})",
        field=Param.SCENARIO,
        value=str(spec),
    )


def load_scenario_file(path: Path) -> Scenario:
    """A scenario YAML (or ``.json``) file, read within the limits (:mod:`jbrl.documents`)."""
    return scenario_from_dict(load_document(path), str(path))


def scenario_from_text(text: str, file: str) -> Scenario:
    data = parse_json(text, file) if file.endswith(".json") else parse_yaml(text, file)
    return scenario_from_dict(data, file)


def scenario_from_dict(data: Any, file: str) -> Scenario:
    """Validate a parsed document into a :class:`Scenario`, or raise one clear InputError."""
    if not isinstance(data, dict):
        raise InputError(
            f"a scenario must be a mapping at the top level, got {type(data).__name__}", file=file
        )
    try:
        return Scenario.model_validate(data)
    except ValidationError as exc:
        raise validation_to_input_error(exc, file) from None
    except ValueError as exc:  # raised by the 'before' validators
        raise InputError(_one_line(str(exc)), file=file) from None
    except InputError as exc:  # a limit, raised before pydantic's own checks
        if exc.file:
            raise
        raise exc.with_file(file) from None


def validation_to_input_error(exc: ValidationError, file: str) -> InputError:
    """Turn pydantic's error list into one paragraph: the first error in full, then a count."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [p for p in first.get("loc", ()) if not (isinstance(p, str) and _TYPE_TAG.match(p))]
    field = format_loc(loc)
    msg = str(first.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    if field:
        return InputError(
            _one_line(msg) + more, file=file, field=field, value=first.get("input"), has_value=True
        )
    # Cross-reference errors carry 'field: message' pairs joined by '; '.
    parts = msg.split("; ")
    head = parts[0]
    extra = f" ({len(parts) - 1} more problem(s) after this one)" if len(parts) > 1 else more
    if ": " in head:
        fld, rest = head.split(": ", 1)
        return InputError(_one_line(rest) + extra, file=file, field=fld)
    return InputError(_one_line(head) + extra, file=file)


def format_loc(loc: list[Any] | tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


def scenario_to_yaml(scenario: Scenario) -> str:
    """Serialise a scenario to the documented YAML form (field aliases, no empty defaults)."""
    data = scenario.model_dump(mode="json", by_alias=True, exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "jbrl scenario"
    return schema
