"""Read YAML into the typed config tree, refusing unknown keys and bad values with a line number.

The tree is made of frozen dataclasses whose fields use a few types only (str, int, float, bool,
Literal, X | None, tuple[X, ...], nested dataclasses). A field may carry ``metadata["check"]``: a
function that returns the value (possibly normalised) or raises ValueError("message|hint").
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from resolver.config.errors import ConfigError

T = TypeVar("T")

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_STR = "tag:yaml.org,2002:str"


# Tags a config may carry, written or implied (YAML 1.1 core schema as PyYAML resolves plain
# values). Any other tag (!!python/object/apply:..., !!set, !custom) is refused, never read as
# a plain string: a file that asks for more than values is not a config.
_KNOWN_TAGS = frozenset(
    {_NULL, _BOOL, _INT, _FLOAT, _STR, "tag:yaml.org,2002:timestamp"}
    | {"tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"}
)
# The deepest real config is five levels (feeds.sources[0].name); composing recurses once per
# level, so a hostile file nested a thousand deep would end in RecursionError without a bound.
MAX_DEPTH = 32


def _tag_text(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:") else tag


class _Loader(yaml.SafeLoader):
    """SafeLoader's composer with a depth bound and a list of allowed tags; constructs nothing."""

    def __init__(self, stream: str, file: str) -> None:
        super().__init__(stream)
        self.file = file
        self.depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]  # stub gap
                raise ConfigError(
                    self.file,
                    mark.line + 1,
                    "",
                    f"nested more than {MAX_DEPTH} levels deep",
                    "a config is sections of key: value lines, a few levels deep",
                )
            node = super().compose_node(parent, index)
        finally:
            self.depth -= 1
        if node is not None and node.tag not in _KNOWN_TAGS:
            raise ConfigError(
                self.file,
                node.start_mark.line + 1,
                "",
                f"YAML tag {_tag_text(node.tag)!r} is not allowed",
                "remove the tag: a config holds plain values, lists and sections",
            )
        return node


class _Ctx:
    def __init__(self, file: str) -> None:
        self.file = file
        self.constructor = yaml.SafeLoader("")

    def fail(self, node: yaml.Node, key: str, message: str, hint: str = "") -> ConfigError:
        return ConfigError(self.file, node.start_mark.line + 1, key, message, hint)


def _type_name(tp: Any) -> str:
    if tp is str:
        return "a string"
    if tp is int:
        return "a whole number"
    if tp is float:
        return "a number"
    if tp is bool:
        return "true or false"
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin is tuple:
        return "a list"
    if dataclasses.is_dataclass(tp):
        return "a section (key: value lines)"
    return str(tp)


def _pairs(ctx: _Ctx, node: yaml.MappingNode, key: str) -> tuple[tuple[str, str], ...]:
    """A mapping of text to text ("clients.names: {192.168.1.23: accueil-pc}"), kept as its
    (key, value) pairs in order: the tree stays immutable and hashable."""
    return tuple(
        (_build(ctx, str, k, f"{key}.{k.value}"), _build(ctx, str, v, f"{key}.{k.value}"))
        for k, v in node.value
    )


def _build(ctx: _Ctx, tp: Any, node: yaml.Node, key: str) -> Any:
    """The value of type ``tp`` that ``node`` holds, or a ConfigError naming its line."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return None
        return _build(ctx, args[0], node, key)
    if dataclasses.is_dataclass(tp):
        assert isinstance(tp, type)
        return _build_section(ctx, tp, node, key)
    if origin is tuple:
        return _build_list(ctx, tp, node, key)
    if not isinstance(node, yaml.ScalarNode):
        raise ctx.fail(
            node,
            key,
            f"expected {_type_name(tp)}, got {_describe(node)}",
            "write a single value on the key's line",
        )
    if origin is typing.Literal:
        return _build_choice(ctx, tp, node, key)
    return _build_scalar(ctx, tp, node, key)


def _build_list(ctx: _Ctx, tp: Any, node: yaml.Node, key: str) -> tuple[Any, ...]:
    """A ``tuple[X, ...]``: a YAML list, nothing (empty), or for text pairs a mapping."""
    item_tp = typing.get_args(tp)[0]
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        return ()
    if isinstance(node, yaml.MappingNode) and typing.get_args(item_tp) == (str, str):
        return _pairs(ctx, node, key)
    if not isinstance(node, yaml.SequenceNode):
        raise ctx.fail(
            node,
            key,
            f"expected a list, got {_describe(node)}",
            "write one item per line starting with '- '",
        )
    return tuple(_build(ctx, item_tp, item, f"{key}[{i}]") for i, item in enumerate(node.value))


def _build_choice(ctx: _Ctx, tp: Any, node: yaml.ScalarNode, key: str) -> Any:
    """A ``Literal[...]`` value, with the closest choice as the hint when it is none of them."""
    # YAML 1.1 reads off/on/yes/no as booleans: for a choice, keep the word as written.
    value = node.value if node.tag == _BOOL else ctx.constructor.construct_scalar(node)
    choices = typing.get_args(tp)
    if value not in choices:
        close = difflib.get_close_matches(str(value), [str(c) for c in choices], 1)
        hint = f"did you mean {close[0]!r}?" if close else "use " + " | ".join(map(str, choices))
        raise ctx.fail(node, key, f"{value!r} is not one of {', '.join(map(str, choices))}", hint)
    return value


def _build_scalar(ctx: _Ctx, tp: Any, node: yaml.ScalarNode, key: str) -> Any:
    """A str, bool, int or float, judged by its YAML tag: a quoted "10" is text, not a number."""
    if tp is str:
        if node.tag in (_NULL,):
            raise ctx.fail(
                node, key, "expected a string, got nothing", "write a value or remove the key"
            )
        return str(ctx.constructor.construct_scalar(node))
    if tp is bool:
        if node.tag != _BOOL:
            raise ctx.fail(
                node, key, f"expected true or false, got {node.value!r}", "write true or false"
            )
        return ctx.constructor.construct_yaml_bool(node)
    if tp is int:
        if node.tag != _INT:
            raise ctx.fail(
                node, key, f"expected a whole number, got {node.value!r}", "write digits, e.g. 10"
            )
        return ctx.constructor.construct_yaml_int(node)
    if tp is float:
        if node.tag == _INT:
            return float(ctx.constructor.construct_yaml_int(node))
        if node.tag != _FLOAT:
            raise ctx.fail(node, key, f"expected a number, got {node.value!r}", "write e.g. 1.5")
        return ctx.constructor.construct_yaml_float(node)
    raise TypeError(f"config type not supported: {tp!r}")


def _culprit(
    check: Callable[[Any], Any], value: Any, node: yaml.Node, path: str
) -> tuple[yaml.Node, str]:
    """For a list that failed its check, the first item that fails alone: point at its line."""
    if isinstance(value, tuple) and isinstance(node, yaml.SequenceNode):
        for i, (item, item_node) in enumerate(zip(value, node.value, strict=False)):
            try:
                check((item,))
            except ValueError:
                return item_node, f"{path}[{i}]"
    return node, path


def _at(node: yaml.Node, key: str, path: tuple[str | int, ...]) -> tuple[yaml.Node, str]:
    """The node and key a check across sections names (e.g. ("groups", 1, "clients", 0)), as
    far down as the YAML has it: its line is the one to fix."""
    for part in path:
        if isinstance(part, int) and isinstance(node, yaml.SequenceNode):
            if part >= len(node.value):
                break
            node, key = node.value[part], f"{key}[{part}]"
        elif isinstance(node, yaml.MappingNode):
            found = next((v for k, v in node.value if k.value == part), None)
            if found is None:
                break
            node, key = found, f"{key}.{part}" if key else str(part)
        else:
            break
    return node, key


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a section"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    return repr(node.value) if node.tag != _NULL else "nothing"


def _build_section(ctx: _Ctx, cls: type[T], node: yaml.Node, key: str) -> T:
    if isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
        node = yaml.MappingNode("tag:yaml.org,2002:map", [], node.start_mark, node.end_mark)
    if not isinstance(node, yaml.MappingNode):
        raise ctx.fail(node, key, f"expected a section (key: value lines), got {_describe(node)}")
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for knode, vnode in node.value:
        name = str(knode.value)
        path = f"{key}.{name}" if key else name
        if name not in fields:
            close = difflib.get_close_matches(name, list(fields), 1)
            hint = f"did you mean {close[0]!r}?" if close else "known keys: " + ", ".join(fields)
            raise ctx.fail(knode, path, "unknown key", hint)
        if name in values:
            raise ctx.fail(knode, path, "key given twice", "keep one")
        value = _build(ctx, hints[name], vnode, path)
        check = fields[name].metadata.get("check")
        if check is not None:
            try:
                value = check(value)
            except ValueError as exc:
                message, _, hint = str(exc).partition("|")
                where, at = _culprit(check, value, vnode, path)
                raise ctx.fail(where, at, message, hint) from None
        values[name] = value
    missing = [
        n
        for n, f in fields.items()
        if n not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ctx.fail(
            node,
            f"{key}.{missing[0]}" if key else missing[0],
            "required key missing",
            f"add '{missing[0]}:'",
        )
    try:
        return cls(**values)
    except ValueError as exc:  # cross-field checks in __post_init__
        message, _, hint = str(exc).partition("|")
        where, at = _at(node, key, getattr(exc, "path", ()))
        raise ctx.fail(where, at, message, hint) from None


def load_text(text: str, cls: type[T], file: str = "<config>") -> T:
    """Build ``cls`` from YAML text; raise ConfigError."""
    ctx = _Ctx(file)
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        raise ConfigError(
            file, line, "", f"not valid YAML: {exc.problem or exc}", "check indentation and quoting"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, 0, "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()
    if node is None:
        return cls()
    return _build_section(ctx, cls, node, "")


def load_file(path: Path, cls: type[T]) -> T:
    """Build ``cls`` from a YAML file; raise ConfigError (also for an unreadable file)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            str(path),
            0,
            "",
            f"cannot read the file: {exc.strerror}",
            "check the path given with -c",
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(str(path), 0, "", "not UTF-8 text", "save the file as UTF-8") from None
    return load_text(text, cls, str(path))
