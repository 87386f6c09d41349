"""Config files of ``ue control`` (assemble, train, evaluate): a flat YAML or JSON mapping checked against a
dataclass, so that a misspelt or mistyped field is one clear sentence naming the file and the field.

Command-line ``--set key=value`` overrides are applied after the file and checked the same way.
"""

from __future__ import annotations

import dataclasses
import json
import math
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from ue_metrics.errors import UserError

T = TypeVar("T")


def read_mapping(path: str | Path) -> dict[str, Any]:
    """The top-level mapping of a ``.yaml``/``.yml``/``.json`` config file."""
    from ue_metrics.jsonl import check_regular_file

    path = Path(path)
    check_regular_file(path)  # a folder, FIFO or device is one sentence, not a hang
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); check the --config path") from None
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.start + 1}); a config is a YAML or JSON text file — check the --config path"
        ) from None
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path} line {exc.lineno}: not valid JSON ({exc.msg}); fix the file") from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}); fix the file") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a mapping of field: value, got {type(data).__name__}")
    return data


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (Any,)
        plural = {float: "finite numbers", int: "integers", str: "strings", bool: "true/false values"}.get(item)
        return f"a list of {plural}" if plural else "a list"
    if origin is dict or tp is dict:
        return "a mapping"
    return {type(None): "null", bool: "true/false", int: "an integer", float: "a finite number", str: "a string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` or raise ``ValueError`` (ints are accepted for floats; no other conversion)."""
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except ValueError:
                continue
        raise ValueError
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ValueError
        (item,) = typing.get_args(tp)[:1] or (Any,)
        return [v if item is Any else _coerce(v, item) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError
        return dict(value)
    if tp is Any:
        return value
    if tp is dict:  # a bare ``dict`` annotation (``model_args: dict | None``)
        if not isinstance(value, dict):
            raise ValueError
        return dict(value)
    if tp is type(None):
        if value is None:
            return None
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ValueError
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        elif isinstance(value, str):  # YAML 1.1 reads "1e-4" (no dot) as a string
            number = float(value.strip())
        else:
            raise ValueError
        if not math.isfinite(number):  # .inf / .nan would train a model of NaN weights
            raise ValueError
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError
    raise ValueError


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as YAML (``3``, ``true``, ``[a, b]``, ``null``)."""
    import yaml

    if "=" not in text:
        raise UserError(f"--set {text!r}: write it as field=value, e.g. --set steps=40")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def build(cls: type[T], data: dict[str, Any], where: str) -> T:
    """An instance of the dataclass ``cls`` from ``data``; unknown, missing or mistyped fields are a UserError."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown field {unknown[0]!r}; the fields are {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        try:
            kwargs[name] = _coerce(value, hints[name])
        except ValueError:
            raise UserError(f"{where}: field {name!r} must be {_type_name(hints[name])}, got {value!r}") from None
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{where}: field {missing[0]!r} is required; add it to the config")
    obj = cls(**kwargs)
    check = getattr(obj, "check", None)
    if check is not None:
        check(where)
    return obj


def load(cls: type[T], path: str | Path | None, overrides: list[str] | None = None, **given: Any) -> T:
    """A config from a file (optional), then keyword values, then ``--set`` overrides."""
    data: dict[str, Any] = dict(read_mapping(path)) if path else {}
    data.update({k: v for k, v in given.items() if v is not None})
    for text in overrides or []:
        key, value = parse_override(text)
        data[key] = value
    where = str(path) if path else "config"
    return build(cls, data, where)


def to_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj)
