"""The typed base of every part of the canonical result: decode from JSON, encode back to the
same JSON, and describe itself as JSON Schema.

A `Section` is a keyword-only dataclass. Decoding never converts a value (an int stays an int, so
the bytes come back the same); a key the class does not declare (written by a newer minor
version) is kept in `extra`, and the key order read is kept, so `from_json(d).to_json() == d` with
the same key order. A section built in code writes its fields in declaration order, then `extra`;
a field declared with `omit_none` is left out while it is None.

A field without a default is required in the schema; its annotation gives the JSON type
(`int | None` -> integer or null, `list[RankEntry]` -> array of `$ref`), `Annotated[int,
Constraint(minimum=0)]` adds keywords, `spec(doc=...)` the description, and a class's
`__schema__` adds what types cannot say (conditions between fields).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, TypeVar, Union, get_args, get_origin

from minicluster.core.coverage import Coverage
from minicluster.core.metrics import MetricValue

S = TypeVar("S", bound="Section")


@dataclass(frozen=True)
class Constraint:
    """JSON Schema keywords a type carries (`Annotated[int, Constraint(minimum=0)]`)."""

    keywords: dict[str, Any]

    def __init__(self, **keywords: Any) -> None:
        object.__setattr__(self, "keywords", keywords)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self.keywords.items(), key=str)))


def spec(
    default: Any = dataclasses.MISSING,
    *,
    factory: Callable[[], Any] | None = None,
    doc: str | None = None,
    omit_none: bool = False,
    schema: dict[str, Any] | None = None,
    key: str | None = None,
    nullable: bool = True,
) -> Any:
    """A field of a Section: its default (or `factory`), its description in the schema (`doc`),
    schema keywords its type cannot carry (`schema`), its JSON key when it differs from the
    name (`key`), `omit_none`: a section built in code leaves it out while it is None, and
    `nullable=False`: None means the key is absent; JSON null is not allowed there."""
    metadata = {
        "doc": doc,
        "omit_none": omit_none,
        "schema": schema or {},
        "key": key,
        "nullable": nullable,
    }
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class MetricMap(dict[str, MetricValue]):
    """`name -> MetricValue` as read from a result. A metric whose JSON `MetricValue.to_dict`
    would not give back exactly (extra keys from a newer minor version, another key order) is
    written back as it was read, as long as its value has not been replaced."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        source = args[0] if args else None
        self.raw: dict[str, tuple[MetricValue, dict[str, Any]]] = (
            dict(source.raw) if isinstance(source, MetricMap) else {}
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, mv in self.items():
            kept = self.raw.get(name)
            out[name] = _plain(kept[1]) if kept is not None and kept[0] is mv else mv.to_dict()
        return out


def decode_metric(d: Any) -> Any:
    """A metric's JSON as a MetricValue (malformed input stays as it is: validation says why)."""
    if not isinstance(d, dict) or "value" not in d or "unit" not in d or "status" not in d:
        return d
    cov = d.get("coverage")
    coverage = None
    if isinstance(cov, dict):
        try:
            coverage = Coverage.from_dict(cov)
        except ValueError:
            coverage = None
    return MetricValue(
        d["value"], d["unit"], d["status"], d.get("method"), d.get("reason"), coverage
    )


def decode_metrics(d: Any) -> Any:
    if not isinstance(d, dict):
        return d
    out = MetricMap()
    for name, raw in d.items():
        mv = decode_metric(raw)
        out[name] = mv
        if not isinstance(mv, MetricValue) or not same_json(mv.to_dict(), raw):
            out.raw[name] = (mv, raw)
    return out


def same_json(a: Any, b: Any) -> bool:
    """`a == b` with dict keys in the same order too (the same bytes once written)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@dataclass(kw_only=True)
class Section:
    """Base of every part of the result: `extra` holds the keys this version does not declare."""

    __schema__: ClassVar[dict[str, Any]] = {}
    __schema_name__: ClassVar[str | None] = None

    extra: dict[str, Any] = field(default_factory=dict, repr=False, metadata={"json": False})
    # The keys read, in order (None: built in code). Not compared: two equal sections are equal
    # whatever order their keys were written in.
    _keys: tuple[str, ...] | None = field(
        default=None, repr=False, compare=False, metadata={"json": False}
    )

    @classmethod
    def from_json(cls: type[S], data: dict[str, Any]) -> S:
        """The section of JSON object `data`; values are not converted, unknown keys kept."""
        fields = _fields(cls)
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for key, value in data.items():
            f = fields.get(key)
            if f is None:
                extra[key] = value
            else:
                kwargs[f.name] = value if f.decode is _keep else f.decode(value)
        if len(kwargs) < len(fields):
            missing = [f.key for f in fields.values() if f.required and f.name not in kwargs]
            if missing:
                raise ValueError(f"{_schema_name(cls)}: missing {', '.join(missing)}")
        return cls(**kwargs, extra=extra, _keys=tuple(data))

    def to_json(self) -> dict[str, Any]:
        """The JSON object of this section (fresh containers: changing it changes nothing here)."""
        fields = _fields(type(self))
        out: dict[str, Any] = {}
        if self._keys is not None:
            for key in self._keys:
                f = fields.get(key)
                if f is not None:
                    out[key] = _encode(getattr(self, f.name))
                elif key in self.extra:
                    out[key] = _plain(self.extra[key])
            for f in fields.values():  # set after reading
                if f.key not in out and f.key not in self._keys:
                    value = getattr(self, f.name)
                    if f.required or value != f.default_value():
                        out[f.key] = _encode(value)
        else:
            for f in fields.values():
                value = getattr(self, f.name)
                if value is None and f.omit_none:
                    continue
                out[f.key] = _encode(value)
        for key, value in self.extra.items():
            if key not in out and (self._keys is None or key not in self._keys):
                out[key] = _plain(value)
        return out

    def get(self, key: str, default: Any = None) -> Any:
        """The JSON value under `key` (a declared field's or an extra key's; `default` when this
        section does not write it), for generic readers (every key of a finding); typed code
        reads the attributes."""
        f = _fields(type(self)).get(key)
        if f is None:
            return self.extra.get(key, default)
        value = getattr(self, f.name)
        if self._keys is not None:
            absent = key not in self._keys and not f.required and value == f.default_value()
        else:
            absent = value is None and f.omit_none
        return default if absent else _encode(value)

    def keys(self) -> list[str]:
        """The JSON keys this section writes, in order."""
        return list(self.to_json())


@dataclass(frozen=True)
class _Field:
    name: str
    key: str
    annotation: Any
    required: bool
    omit_none: bool
    nullable: bool
    doc: str | None
    schema: dict[str, Any]
    default: Any
    factory: Callable[[], Any] | None
    decode: Callable[[Any], Any]

    def default_value(self) -> Any:
        return self.factory() if self.factory is not None else self.default


_FIELDS: dict[type, dict[str, _Field]] = {}


def _fields(cls: type) -> dict[str, _Field]:
    """`json key -> _Field` of a Section class, in declaration order (cached)."""
    cached = _FIELDS.get(cls)
    if cached is not None:
        return cached
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, _Field] = {}
    for f in dataclasses.fields(cls):
        if f.metadata.get("json") is False:
            continue
        key = f.metadata.get("key") or f.name
        factory = None if f.default_factory is dataclasses.MISSING else f.default_factory
        required = f.default is dataclasses.MISSING and factory is None
        out[key] = _Field(
            name=f.name,
            key=key,
            annotation=hints[f.name],
            required=required,
            omit_none=bool(f.metadata.get("omit_none")),
            nullable=f.metadata.get("nullable", True) is not False,
            doc=f.metadata.get("doc"),
            schema=dict(f.metadata.get("schema") or {}),
            default=None if f.default is dataclasses.MISSING else f.default,
            factory=factory,
            decode=decoder(hints[f.name]),
        )
    _FIELDS[cls] = out
    return out


def _strip(tp: Any) -> tuple[Any, dict[str, Any]]:
    """(`tp` without Annotated, the schema keywords its Constraints carry)."""
    keywords: dict[str, Any] = {}
    if get_origin(tp) is typing.Annotated:
        args = get_args(tp)
        tp = args[0]
        for meta in args[1:]:
            if isinstance(meta, Constraint):
                keywords.update(meta.keywords)
    return tp, keywords


def _without_none(tp: Any) -> Any:
    """Annotation `tp` without None (`int | None` -> `int`): a field whose None means absent."""
    bare, keywords = _strip(tp)
    if not _is_union(bare):
        return tp
    args = [a for a in get_args(bare) if a is not type(None)]
    out: Any = args[0]
    for a in args[1:]:
        out = out | a
    return typing.Annotated[out, Constraint(**keywords)] if keywords else out


def _is_union(tp: Any) -> bool:
    return get_origin(tp) in (Union, types.UnionType)


def _json_kind(tp: Any) -> type | tuple[type, ...]:
    """The Python type a JSON value must have to be decoded as `tp` (in a union)."""
    tp, _ = _strip(tp)
    origin = get_origin(tp)
    if origin is list:
        return list
    if origin is dict or tp is MetricValue or (isinstance(tp, type) and issubclass(tp, Section)):
        return dict
    if origin is Literal:
        return tuple({type(a) for a in get_args(tp)})
    if tp is float:
        return (int, float)
    if tp is Any:
        return object
    return tp if isinstance(tp, type) else object


def decoder(tp: Any) -> Callable[[Any], Any]:
    """How a JSON value becomes a value of annotation `tp` (sections and metrics decoded, the
    rest kept as it is; a value of the wrong shape is kept too: validation names it)."""
    tp, _ = _strip(tp)
    if _is_union(tp):
        options = [(_json_kind(a), decoder(a)) for a in get_args(tp) if a is not type(None)]
        if all(decode is _keep for _, decode in options):
            return _keep  # numbers, strings, literals: kept as they are

        def decode_union(v: Any) -> Any:
            if v is None:
                return None
            for kind, decode in options:
                if isinstance(v, kind) and not (
                    isinstance(v, bool) and kind in (int, (int, float))
                ):
                    return decode(v)
            return v

        return decode_union
    origin = get_origin(tp)
    if origin is list:
        (item_tp,) = get_args(tp)
        item = decoder(item_tp)
        if item is _keep:
            return _keep
        return lambda v: [item(x) for x in v] if isinstance(v, list) else v
    if origin is dict:
        _, value_tp = get_args(tp)
        if _strip(value_tp)[0] is MetricValue:
            return decode_metrics
        value = decoder(value_tp)
        if value is _keep:
            return _keep
        return lambda v: {k: value(x) for k, x in v.items()} if isinstance(v, dict) else v
    if isinstance(tp, type) and issubclass(tp, Section):
        section = tp
        return lambda v: section.from_json(v) if isinstance(v, dict) else v
    if tp is MetricValue:
        return decode_metric
    return _keep


def _keep(v: Any) -> Any:
    return v


_LEAVES = (str, int, float, bool, type(None))


def _encode(v: Any) -> Any:
    if type(v) in _LEAVES:
        return v
    if isinstance(v, Section):
        return v.to_json()
    if isinstance(v, MetricMap):
        return v.to_json()
    if isinstance(v, MetricValue):
        return v.to_dict()
    if isinstance(v, dict):
        return {k: _encode(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_encode(x) for x in v]
    return v


def _plain(v: Any) -> Any:
    """A fresh copy of plain JSON (dicts and lists copied, leaves shared)."""
    if type(v) in _LEAVES:
        return v
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return _encode(v)


# --- JSON Schema ---------------------------------------------------------------------------

_PRIMITIVES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _schema_name(cls: type) -> str:
    name = getattr(cls, "__schema_name__", None)
    return name or re.sub(r"(?<!^)(?=[A-Z])", "_", cls.__name__).lower()


class SchemaBuilder:
    """The JSON Schema of Section classes: one `$defs` entry per class reached from the root."""

    def __init__(self, external: dict[type, tuple[str, Callable[[SchemaBuilder], dict[str, Any]]]]):
        self.defs: dict[str, dict[str, Any]] = {}
        self.external = external  # classes that are not Sections (MetricValue): name, builder

    def root(self, cls: type[Section], head: dict[str, Any]) -> dict[str, Any]:
        body = self.section(cls)
        schema = {**head, **body}
        schema["$defs"] = dict(sorted(self.defs.items()))
        return schema

    def ref(self, cls: type) -> dict[str, Any]:
        if cls in self.external:
            name, build = self.external[cls]
            if name not in self.defs:
                self.defs[name] = {}
                self.defs[name] = build(self)
            return {"$ref": f"#/$defs/{name}"}
        name = _schema_name(cls)
        if name not in self.defs:
            self.defs[name] = {}  # recursion guard
            self.defs[name] = self.section(cls)
        return {"$ref": f"#/$defs/{name}"}

    def section(self, cls: type) -> dict[str, Any]:
        fields = _fields(cls)
        props: dict[str, Any] = {}
        for f in fields.values():
            annotation = f.annotation if f.nullable else _without_none(f.annotation)
            prop = self.of(annotation)
            prop.update(f.schema)
            if f.doc:
                prop["description"] = f.doc
            props[f.key] = prop
        out: dict[str, Any] = {"type": "object"}
        required = [f.key for f in fields.values() if f.required]
        if required:
            out["required"] = required
        out["properties"] = props
        out.update(getattr(cls, "__schema__", {}) or {})
        return out

    def of(self, tp: Any) -> dict[str, Any]:
        """The schema of annotation `tp`."""
        tp, keywords = _strip(tp)
        if _is_union(tp):
            args = get_args(tp)
            stripped = [_strip(a) for a in args]
            if all(a in _PRIMITIVES for a, _ in stripped):
                out: dict[str, Any] = {"type": [_PRIMITIVES[a] for a, _ in stripped]}
                for _, kw in stripped:
                    out.update(kw)
                return {**out, **keywords}
            literals = [a for a, _ in stripped if get_origin(a) is Literal]
            if literals and all(get_origin(a) is Literal or a is type(None) for a, _ in stripped):
                values = [v for a in literals for v in get_args(a)]
                if type(None) in args:
                    values.append(None)
                return {"enum": values, **keywords}
            options = [self.of(a) for a in args]
            return {"anyOf": options, **keywords}
        if tp in _PRIMITIVES:
            return {"type": _PRIMITIVES[tp], **keywords}
        if tp is Any:
            return dict(keywords)
        origin = get_origin(tp)
        if origin is Literal:
            return {"enum": list(get_args(tp)), **keywords}
        if origin is tuple and len(get_args(tp)) == 2 and get_args(tp)[1] is Ellipsis:
            return {"type": "array", "items": self.of(get_args(tp)[0]), **keywords}
        if origin is list:
            (item,) = get_args(tp)
            out = {"type": "array"}
            if _strip(item)[0] is not Any:
                out["items"] = self.of(item)
            return {**out, **keywords}
        if origin is dict:
            _, value = get_args(tp)
            out = {"type": "object"}
            if _strip(value)[0] is not Any:
                out["additionalProperties"] = self.of(value)
            return {**out, **keywords}
        if isinstance(tp, type) and (issubclass(tp, Section) or tp in self.external):
            return {**self.ref(tp), **keywords}
        raise TypeError(f"no JSON Schema for {tp!r}")


def dataclass_schema(
    builder: SchemaBuilder, cls: type, not_null: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The schema of a plain dataclass (not a Section: MetricValue, Coverage) from its fields;
    `not_null`: fields whose None means absent."""
    hints = typing.get_type_hints(cls, include_extras=True)
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in dataclasses.fields(cls):
        tp = _without_none(hints[f.name]) if f.name in not_null else hints[f.name]
        props[f.name] = builder.of(tp)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
    return {"type": "object", "required": required, "properties": props}
