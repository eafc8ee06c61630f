"""Load scenarios from an embedded name, a YAML file or a JellyBean optimizer-inputs directory.

Every failure becomes an :class:`~jbrl.errors.InputError` naming the file, the field and the
value, so the command line can print one paragraph and exit 2.
"""

from __future__ import annotations

import difflib
import re
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

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
        raise validation_to_input_error(exc, file, Scenario) from None
    except ValueError as exc:  # raised by the 'before' validators
        raise InputError(_one_line(str(exc)), file=file) from None
    except InputError as exc:  # a limit, raised before pydantic's own checks
        if exc.file:
            raise
        raise exc.with_file(file) from None


M = typing.TypeVar("M", bound=BaseModel)


def validate_document(model: type[M], raw: dict[str, Any], file: str) -> M:
    """``model`` validated from a parsed document, or one clear InputError naming ``file``
    (pydantic's errors as :func:`validation_to_input_error` words them; a limit exceeded while
    validating gets the file too)."""
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        raise validation_to_input_error(exc, file, model) from None
    except InputError as exc:  # a limit
        raise (exc if exc.file else exc.with_file(file)) from None


def validation_to_input_error(
    exc: ValidationError, file: str, model: type[BaseModel] | None = None
) -> InputError:
    """Turn pydantic's error list into one paragraph: the first error in full, then a count.

    An unknown field comes first and is named as unknown, with the closest valid name of its
    mapping (from ``model``'s fields, else from the fields reported missing beside it): a
    misspelt ``sloo:`` reads "unknown field 'sloo' (did you mean 'slo'?)" rather than "field
    'slo': Field required" with the whole document as the value. A missing field's value (its
    parent mapping) is never shown."""
    errors = exc.errors(include_url=False)
    unknown = [e for e in errors if e.get("type") == "extra_forbidden"]
    first = unknown[0] if unknown else errors[0]
    loc = _field_loc(first)
    field = format_loc(loc)
    more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
    if unknown:
        hint = _suggestion(loc, errors, model)
        return InputError(f"unknown field {str(loc[-1])!r}{hint}{more}", file=file, field=field)
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if field:
        missing = first.get("type") == "missing"
        return InputError(
            _one_line(msg) + more,
            file=file,
            field=field,
            value=None if missing else first.get("input"),
            has_value=not missing,
        )
    # Cross-reference errors carry 'field: message' pairs joined by '; '.
    parts = msg.split("; ")
    head = parts[0]
    extra = f" ({len(parts) - 1} more problem(s) after this one)" if len(parts) > 1 else more
    if ": " in head:
        fld, rest = head.split(": ", 1)
        return InputError(_one_line(rest) + extra, file=file, field=fld)
    return InputError(_one_line(head) + extra, file=file)


def _field_loc(error: Any) -> list[Any]:
    """An error's location without pydantic's union-member tags."""
    return [p for p in error.get("loc", ()) if not (isinstance(p, str) and _TYPE_TAG.match(p))]


def _suggestion(loc: list[Any], errors: list[Any], model: type[BaseModel] | None) -> str:
    """' (did you mean 'x'?)' for the unknown field at ``loc``, or '' when nothing is close."""
    parent = loc[:-1]
    names = _field_names(model, parent) if model is not None else []
    names += [
        str(lc[-1])
        for e in errors
        if e.get("type") == "missing" and (lc := _field_loc(e))[:-1] == parent
    ]
    close = difflib.get_close_matches(str(loc[-1]), list(dict.fromkeys(names)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _field_names(model: type[BaseModel], loc: list[Any]) -> list[str]:
    """The field names (aliases where set) of the mapping at ``loc`` inside ``model``."""
    cls: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        info = cls.model_fields.get(part) or next(
            (f for f in cls.model_fields.values() if f.alias == part), None
        )
        cls = _model_in(info.annotation) if info is not None else None
        if cls is None:
            return []
    return [f.alias or name for name, f in cls.model_fields.items()]


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation (``Model``, ``list[Model]``, ``Model | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


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
