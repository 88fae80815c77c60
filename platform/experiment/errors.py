"""One error type for a bad spec: every problem of a file at once, each with its path
in the file (``datasets[0].root``), its line where known, and what would be valid."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails, InitErrorDetails, PydanticCustomError

from dragsaw.workloads._checks import closest

Loc = tuple[str | int, ...]
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: ``path`` as written in the file, the ``line`` it is on
    (1-based, when the spec came from a file), and the message."""

    path: str
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if not self.path:
            where = f"line {self.line}" if self.line is not None else "(top level)"
            where += f", column {self.column}" if self.column is not None else ""
        else:
            where = self.path + (f" (line {self.line})" if self.line is not None else "")
        return f"{where}: {self.message}"


class SpecError(ValueError):
    """A spec that cannot be used. ``problems`` lists every problem found; ``str()`` is a
    readable multi-line message for the command line (no traceback needed)."""

    def __init__(self, problems: Sequence[Problem], source: str | None = None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        n = len(self.problems)
        lines = [f"{head}{n} problem{'s' if n != 1 else ''} in the experiment spec:"]
        lines += [f"  - {p}" for p in self.problems]
        super().__init__("\n".join(lines))


def format_loc(loc: Iterable) -> str:
    """``('datasets', 0, 'root')`` -> ``datasets[0].root``; keys that are not plain names
    are quoted: ``search.space["train.lr"].low``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN_KEY.match(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f'["{part}"]'
    return out


def _unwrap(tp):
    """Strip Optional / Annotated; a union with one model member becomes that member."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
        elif origin in (typing.Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            models = [a for a in members if isinstance(a, type) and issubclass(a, BaseModel)]
            if len(members) == 1:
                tp = members[0]
            elif len(models) == 1:
                tp = models[0]
            else:
                return tp
        else:
            return tp


def model_at(root: type[BaseModel], loc: Iterable) -> type[BaseModel] | None:
    """The pydantic model class found by following ``loc`` from ``root``, if any."""
    tp = root
    for part in loc:
        tp = _unwrap(tp)
        origin = typing.get_origin(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif origin in (list, tuple) and isinstance(part, int):
            tp = typing.get_args(tp)[0]
        elif origin is dict:
            tp = typing.get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def unknown_key_message(key: str, model: type[BaseModel] | None) -> str:
    """The message for a key that ``model`` does not have: the closest and the valid keys."""
    if model is None:
        return f"unknown key {key!r}"
    valid = list(model.model_fields)
    return f"unknown key {key!r}; {closest(str(key), valid)} (valid keys: {', '.join(valid)})"


def describe(error: ErrorDetails, root: type[BaseModel] | None) -> str:
    """A pydantic error's message, with unknown keys explained against ``root``'s schema."""
    if error["type"] == "extra_forbidden" and root is not None:
        return unknown_key_message(str(error["loc"][-1]), model_at(root, error["loc"][:-1]))
    if error["type"] == "missing":
        return "required, but missing"
    message = error["msg"]
    return message.removeprefix("Value error, ")


def relevant(errors: list[ErrorDetails]) -> list[ErrorDetails]:
    """pydantic's errors without the echoes: a container reported "too short" only because
    an item inside it failed is dropped when that item's own error is present."""
    def inside(e, other):
        return len(other["loc"]) > len(e["loc"]) and tuple(other["loc"][: len(e["loc"])]) == tuple(e["loc"])

    return [e for e in errors if not (e["type"] == "too_short" and any(inside(e, o) for o in errors))]


def as_problems(exc: ValidationError, root: type[BaseModel] | None = None, prefix: Loc = ()
                ) -> list[tuple[Loc, str]]:
    """(loc, message) pairs of a ValidationError, locs prefixed with ``prefix``."""
    return [(tuple(prefix) + tuple(e["loc"]), describe(e, root)) for e in relevant(exc.errors())]


def raise_problems(title: str, problems: Sequence[tuple[Loc, str]]) -> None:
    """Raise one ValidationError holding every (loc, message) of ``problems`` (no-op if none).
    Raised inside a pydantic validator, pydantic merges them under the field's path."""
    if not problems:
        return
    seen, details = set(), []
    for loc, message in problems:
        if (tuple(loc), message) in seen:
            continue
        seen.add((tuple(loc), message))
        details.append(InitErrorDetails(type=PydanticCustomError("spec", "{msg}", {"msg": message}),
                                        loc=tuple(loc), input=None))
    raise ValidationError.from_exception_data(title, details)


__all__ = ["SpecError", "Problem", "format_loc", "model_at", "describe", "as_problems", "raise_problems",
           "unknown_key_message", "relevant"]
