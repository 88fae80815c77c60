"""Reading a spec: YAML with line numbers, ``--set`` overrides, and one error for everything.

The YAML dialect is PyYAML's safe loader with two YAML 1.2 fixes and one check: only
``true``/``false`` are booleans (``on``, ``off``, ``yes``, ``no`` stay strings, so they can be
labels), ``1e-4`` is a float (YAML 1.1 reads it as a string), and a key repeated in one
mapping is an error (PyYAML would keep the last silently). Anchors and merge keys
(``<<: *base``) work as usual; top-level keys starting with ``x-`` may hold anchors.

Override paths: ``train.epochs``, ``seeds``, ``datasets[0].root``, ``axes["model.name"]``.
A dotted path also matches an existing key that contains dots (``axes.model.name``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from dragsaw.platform.experiment.errors import Problem, SpecError, describe, format_loc, relevant
from dragsaw.platform.experiment.schema import ExperimentSpec

_BOOL = "tag:yaml.org,2002:bool"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL_RE = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
_FLOAT_RE = re.compile(r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                           |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
                           |[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                           |[-+]?\.(?:inf|Inf|INF)
                           |\.(?:nan|NaN|NAN))$""", re.VERBOSE)


class SpecLoader(yaml.SafeLoader):
    """Safe YAML with 1.2 booleans and floats; duplicate keys are errors."""

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: dict[Any, Node] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key!r} (first at line {seen[key].start_mark.line + 1})",
                    key_node.start_mark)
            seen[key] = key_node
        return super().construct_mapping(node, deep)


SpecLoader.yaml_implicit_resolvers = {
    first: [(tag, _BOOL_RE if tag == _BOOL else _FLOAT_RE if tag == _FLOAT else rx) for tag, rx in entries
            if tag != _BOOL or first in "tTfF"]
    for first, entries in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def parse_yaml(text: str, source: str = "<string>") -> tuple[Any, Node | None]:
    """(data, node tree) of one YAML document; a syntax error becomes a SpecError with
    the file, line and column."""
    try:
        loader = SpecLoader(text)
    except yaml.YAMLError as exc:  # a character YAML does not allow (a control character)
        raise SpecError([Problem("", f"invalid YAML: {exc}")], source) from None
    loader.name = source
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        detail = "; ".join(p for p in (exc.context, exc.problem) if p)
        raise SpecError([Problem("", f"invalid YAML: {detail}", mark.line + 1 if mark else None,
                                 mark.column + 1 if mark else None)], source) from None
    except yaml.YAMLError as exc:
        raise SpecError([Problem("", f"invalid YAML: {exc}")], source) from None
    finally:
        loader.dispose()
    return data, node


def _match_key(mapping: Mapping, tokens: list, i: int) -> tuple[Any, int] | None:
    """The longest run tokens[i:j] that, joined by dots, is an existing key of ``mapping``."""
    for j in range(len(tokens), i, -1):
        run = tokens[i:j]
        if all(isinstance(t, str) for t in run) and ".".join(run) in mapping:
            return ".".join(run), j
    return None


def line_of(node: Node | None, loc: Iterable) -> int | None:
    """The line (1-based) of the deepest node of ``loc`` found in the YAML tree."""
    if node is None:
        return None
    parts = [str(p) if not isinstance(p, int) else p for p in loc]
    line, i = node.start_mark.line + 1, 0
    while i < len(parts):
        if isinstance(node, MappingNode):
            keys = {k.value: (k, v) for k, v in node.value if isinstance(k, ScalarNode)}
            found = _match_key(keys, [str(p) for p in parts], i)
            if found is None:
                break
            key_node, node = keys[found[0]]
            line, i = key_node.start_mark.line + 1, found[1]
        elif isinstance(node, SequenceNode) and isinstance(part := parts[i], int) and part < len(node.value):
            child: Node = node.value[part]
            node, line, i = child, child.start_mark.line + 1, i + 1
        else:
            break
    return line


_TOKEN = re.compile(r"""\.?(?:\[(\d+)\]|\["([^"]*)"\]|\['([^']*)'\]|([^.\[\]"']+))""")


def parse_path(text: str) -> list[str | int]:
    """``datasets[0].root`` -> ['datasets', 0, 'root']; ValueError if malformed."""
    tokens, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or (pos == 0 and text.startswith(".")):
            raise ValueError(f"cannot read the path {text!r} at {text[pos:]!r}; write e.g. train.epochs, "
                             'datasets[0].root or axes["model.name"]')
        index, dq, sq, plain = m.groups()
        tokens.append(int(index) if index is not None else dq if dq is not None else sq if sq is not None else plain)
        pos = m.end()
    if not tokens:
        raise ValueError("empty path")
    return tokens


def set_by_path(data: Any, path: str, value: Any) -> None:
    """Set ``value`` at ``path`` inside ``data`` (dicts created where missing); ValueError
    naming the part of the path that does not fit."""
    tokens = parse_path(path)
    node, i = data, 0
    while True:
        here = format_loc(tokens[:i]) or "the spec"
        if isinstance(node, dict):
            found = _match_key(node, tokens, i)
            if found is None:
                if not isinstance(tokens[i], str):
                    raise ValueError(f"{here} is a mapping: index it by key, not [{tokens[i]}]")
                found = (tokens[i], i + 1)
            key, j = found
            if j == len(tokens):
                node[key] = value
                return
            if node.get(key) is None:
                if isinstance(tokens[j], int):
                    raise ValueError(f"{format_loc(tokens[:j])} is not set, so it has no entry [{tokens[j]}]")
                node[key] = {}
            node, i = node[key], j
        elif isinstance(node, list):
            index = tokens[i]
            if not isinstance(index, int):
                raise ValueError(f"{here} is a list: index it as [n], not .{index}")
            if index >= len(node):
                raise ValueError(f"{here} has {len(node)} entries, so [{index}] is out of range")
            if i + 1 == len(tokens):
                node[index] = value
                return
            node, i = node[index], i + 1
        else:
            raise ValueError(f"{here} is {node!r}, not a mapping or a list, so {format_loc(tokens)} cannot be set")


def apply_overrides(data: Any, overrides: Iterable[str]) -> tuple[Any, list[Problem], list[str]]:
    """``data`` with ``key.sub=value`` overrides applied (values read as YAML); returns
    (data, problems, the paths that were set)."""
    data = copy.deepcopy(data) if data is not None else {}
    problems, paths = [], []
    for item in overrides:
        depth, split = 0, -1
        for pos, ch in enumerate(item):
            depth += ch == "["
            depth -= ch == "]"
            if ch == "=" and depth == 0:
                split = pos
                break
        if split <= 0:
            problems.append(Problem(f"--set {item}", "an override is KEY=VALUE, e.g. train.epochs=3"))
            continue
        path, text = item[:split].strip(), item[split + 1:]
        try:
            value = parse_yaml(text, f"--set {path}")[0] if text.strip() else None
            set_by_path(data, path, value)
        except SpecError as exc:
            problems.append(Problem(f"--set {path}", f"the value is not valid YAML: {exc.problems[0]}"))
            continue
        except ValueError as exc:
            problems.append(Problem(f"--set {path}", str(exc)))
            continue
        paths.append(format_loc(parse_path(path)))
    return data, problems, paths


def validate_spec(data: Any, source: str | None = None, node: Node | None = None,
                  overridden: Iterable[str] = ()) -> ExperimentSpec:
    """An :class:`ExperimentSpec` from plain data, or a :class:`SpecError` listing every
    problem (paths as in the file, lines when ``node`` is the file's YAML tree)."""
    if not isinstance(data, Mapping):
        raise SpecError([Problem("", f"the file must hold a mapping (an experiment spec with name, datasets, "
                                     f"model, ...), but holds {type(data).__name__}")], source)
    try:
        spec = ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in relevant(exc.errors()):
            path = format_loc(error["loc"])
            set_by = next((p for p in overridden if path == p or path.startswith((p + ".", p + "["))),
                          None)
            message = describe(error, ExperimentSpec) + (f" (set by --set {set_by})" if set_by else "")
            problems.append(Problem(path, message, None if set_by else line_of(node, error["loc"])))
        raise SpecError(problems, source) from None
    spec._source = source
    return spec


_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe", "UTF-16"),
         (b"\xfe\xff", "UTF-16"))


def decode_spec(raw: bytes, source: str) -> str:
    """The text of a spec file, which must be UTF-8 (a UTF-8 byte-order mark is allowed);
    anything else is a SpecError naming the file, the encoding found and the line."""
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise SpecError([Problem("", f"the file is {name}-encoded; specs must be UTF-8: save it as UTF-8 "
                                         "(e.g. `iconv -f UTF-16 -t UTF-8`)")], source)
    if b"\x00" in raw:
        offset = raw.index(b"\x00")
        raise SpecError([Problem("", f"the file holds NUL bytes (the first at offset {offset}): it looks UTF-16- or "
                                     "UTF-32-encoded; specs must be UTF-8: save it as UTF-8")], source)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        hint = " (it looks UTF-16-encoded: NUL bytes between characters)" if b"\x00" in raw[:200] else ""
        raise SpecError([Problem("", f"the file is not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset "
                                     f"{exc.start}{hint}; specs must be UTF-8: save it as UTF-8",
                                 line, column)], source) from None


def load_spec(path: str | Path, overrides: Iterable[str] = (), *, smoke: bool = False) -> ExperimentSpec:
    """Read, override and validate the spec in ``path``.

    overrides: ``key.sub=value`` strings (values read as YAML: ``seeds=[0,1]``), applied after
    the file (and after its ``smoke:`` overrides when ``smoke``). Raises :class:`SpecError`
    listing every problem at once: YAML syntax (with line and column), unknown keys, wrong
    values, bad override paths.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise SpecError([Problem("", f"cannot read the spec: {exc.strerror or exc}")], source) from None
    data, node = parse_yaml(decode_spec(raw, source), source)
    problems: list[Problem] = []
    overridden: list[str] = []
    if smoke:
        smoke_items = (data or {}).get("smoke") if isinstance(data, Mapping) else None
        if not smoke_items:
            problems.append(Problem("smoke", "--smoke needs a `smoke:` section of overrides in the spec"))
        else:
            data, bad, overridden = _apply_smoke(data, smoke_items)
            problems += bad
    data, bad, paths = apply_overrides(data, list(overrides))
    problems += bad
    overridden += paths
    try:
        spec = validate_spec(data, source, node, overridden)
    except SpecError as exc:
        raise SpecError(problems + exc.problems, source) from None
    if problems:
        raise SpecError(problems, source)
    if not smoke and spec.smoke:
        smoked, bad, smoke_paths = _apply_smoke(data, spec.smoke)
        try:
            validate_spec(smoked, source, None, smoke_paths)
        except SpecError as exc:
            bad += [Problem(p.path, f"with the smoke overrides applied: {p.message}") for p in exc.problems]
        if bad:
            raise SpecError(bad, source)
    return spec


def _apply_smoke(data: Any, smoke: Mapping) -> tuple[Any, list[Problem], list[str]]:
    data = copy.deepcopy(data)
    problems, paths = [], []
    if not isinstance(smoke, Mapping):
        return data, [Problem("smoke", "must be a mapping of override paths to values")], []
    for path, value in smoke.items():
        try:
            set_by_path(data, str(path), copy.deepcopy(value))
            paths.append(format_loc(parse_path(str(path))))
        except ValueError as exc:
            problems.append(Problem(format_loc(("smoke", str(path))), str(exc)))
    return data, problems, paths


__all__ = ["load_spec", "decode_spec", "validate_spec", "parse_yaml", "apply_overrides", "set_by_path", "parse_path", "line_of",
           "SpecLoader"]
