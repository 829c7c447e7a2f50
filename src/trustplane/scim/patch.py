"""PATCH (RFC 7644 §3.5.2) on a SCIM document: add / replace / remove, with and without a path, with value
filters in paths (``emails[type eq "work"].value``) and on extension attributes. The Entra dialect adds its
quirks: capitalised ``op`` values, path-less values with dotted and URN-qualified keys, ``remove`` whose value
selects what to remove, and a value filter that matches nothing creating the element (``unmatched filter``).
Group members are not patched here: the service turns member operations into single-edge changes."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from trustplane.scim.errors import invalid_path, invalid_syntax, invalid_value, mutability, no_target
from trustplane.scim.filter import And, Compare, Node, PatchPath, evaluate, parse_path
from trustplane.scim.resources import EMPTY, Dialect, coerce, normalize
from trustplane.scim.schemas import PATCH_OP, SCHEMAS, Attr, ResourceType

OPS = ("add", "replace", "remove")


@dataclass(frozen=True)
class Operation:
    op: str  # add replace remove
    path: PatchPath | None
    value: Any
    raw_path: str | None = None


def parse_operations(body: dict[str, Any], dialect: Dialect) -> list[Operation]:
    schemas = body.get("schemas")
    if not dialect.tolerant and (not isinstance(schemas, list) or PATCH_OP not in schemas):
        raise invalid_syntax(f"A PATCH request's 'schemas' must be ['{PATCH_OP}'].")
    raw_ops = body.get("Operations")
    if raw_ops is None and dialect.tolerant:
        raw_ops = next((v for k, v in body.items() if k.lower() == "operations"), None)
    if not isinstance(raw_ops, list) or not raw_ops:
        raise invalid_syntax("A PATCH request needs a non-empty 'Operations' list.")
    operations: list[Operation] = []
    for index, raw in enumerate(raw_ops):
        if not isinstance(raw, dict):
            raise invalid_syntax(f"Operation {index} is not an object.")
        if dialect.tolerant:
            raw = {k.lower() if k.lower() in ("op", "path", "value") else k: v for k, v in raw.items()}
        op = raw.get("op")
        if not isinstance(op, str):
            raise invalid_syntax(f"Operation {index} has no 'op'.")
        if dialect.tolerant:
            op = op.lower()  # Entra sends Add / Replace / Remove
        if op not in OPS:
            raise invalid_syntax(f"Operation {index}: 'op' must be one of add, replace, remove; not {op!r}.")
        raw_path = raw.get("path")
        if raw_path is not None and not isinstance(raw_path, str):
            raise invalid_path(f"Operation {index}: 'path' must be a string.")
        path = parse_path(raw_path, SCHEMAS) if raw_path else None
        if op == "remove" and path is None:
            raise no_target(f"Operation {index}: 'remove' needs a 'path'.")
        if op != "remove" and "value" not in raw:
            raise invalid_value(f"Operation {index}: '{op}' needs a 'value'.")
        value = raw.get("value")
        if op == "remove" and value is not None and not dialect.tolerant:
            raise invalid_value(
                f"Operation {index}: a remove operation carries no value; a filter in the path selects what "
                "to remove."
            )
        operations.append(Operation(op, path, value, raw_path))
    return operations


@dataclass(frozen=True)
class Target:
    """Where an operation's path points: the holder dict, the attribute definition and the extension id (or
    None for core attributes)."""

    attr: Attr
    extension: str | None


def resolve_target(rtype: ResourceType, path: PatchPath, dialect: Dialect) -> Target | None:
    schema_id = path.schema
    if schema_id is not None and schema_id.lower() == rtype.schema.id.lower():
        schema_id = None
    found = rtype.find(schema_id, path.attr)
    if found is None:
        if dialect.tolerant:
            return None  # Entra may patch attributes this directory does not keep
        raise invalid_path(
            f"'{path.schema + ':' if path.schema else ''}{path.attr}' is not an attribute of a {rtype.name}."
        )
    schema, attr = found
    if attr.mutability == "readOnly":
        raise mutability(f"'{attr.name}' is read-only.")
    extension = schema.id if schema is not rtype.schema else None
    if path.sub is not None:
        sub = attr.child(path.sub)
        if sub is None:
            raise invalid_path(f"'{attr.name}' has no sub-attribute '{path.sub}'.")
        if sub.mutability == "readOnly":
            raise mutability(f"'{attr.name}.{sub.name}' is read-only.")
    if path.filter is not None and not attr.multi:
        raise invalid_path(f"'{attr.name}' is not multi-valued; it takes no [filter].")
    return Target(attr, extension)


def _filter_seed(node: Node) -> dict[str, Any]:
    """The element a filter describes (its ``eq`` clauses), for a filter that matched nothing in Entra's
    dialect: ``emails[type eq "work"].value`` then creates ``{"type": "work", "value": …}``."""
    if isinstance(node, Compare) and node.op == "eq" and node.path.sub is None:
        return {node.path.attr: node.value}
    if isinstance(node, And):
        return {**_filter_seed(node.left), **_filter_seed(node.right)}
    return {}


def _canonical_keys(attr: Attr, element: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in element.items():
        child = attr.child(key)
        out[child.name if child else key] = value
    return out


def _single_primary(elements: list[Any], chosen: list[Any]) -> None:
    """RFC 7643 §2.4: at most one element is primary; the newest primary wins."""
    if any(isinstance(e, dict) and e.get("primary") is True for e in chosen):
        for element in elements:
            if isinstance(element, dict) and element not in chosen and element.get("primary") is True:
                element["primary"] = False


def apply(
    rtype: ResourceType, doc: dict[str, Any], operations: list[Operation], dialect: Dialect
) -> dict[str, Any]:
    """A new document with every operation applied in order (the input is not changed)."""
    doc = copy.deepcopy(doc)
    for operation in operations:
        _apply_one(rtype, doc, operation, dialect)
    return {k: v for k, v in doc.items() if v not in EMPTY}


def _apply_one(rtype: ResourceType, doc: dict[str, Any], operation: Operation, dialect: Dialect) -> None:
    op, path, value = operation.op, operation.path, operation.value
    if path is None:
        if not isinstance(value, dict):
            raise invalid_value(f"A path-less '{op}' needs an object of attributes as its value.")
        values = normalize(rtype, value, dialect, check_schemas=False)
        for key, item in values.items():
            if key in SCHEMAS:  # an extension object
                holder = doc.setdefault(key, {})
                for sub_key, sub_value in item.items():
                    ext_attr = SCHEMAS[key].attr(sub_key)
                    if ext_attr is not None:
                        _set_attr(holder, ext_attr, sub_value, op)
                continue
            found = rtype.find(None, key)
            if found is not None:
                _set_attr(doc, found[1], item, op)
        return
    if path.attr == "":  # a bare extension URN: the whole extension object
        if path.schema not in [e.id for e in rtype.extensions]:
            raise invalid_path(f"'{path.schema}' is not an extension of a {rtype.name}.")
        if op == "remove":
            doc.pop(str(path.schema), None)
            return
        if not isinstance(value, dict):
            raise invalid_value(f"'{path.schema}' takes an object of the extension's attributes.")
        wrapped = normalize(rtype, {str(path.schema): value}, dialect, check_schemas=False)
        holder = doc.setdefault(str(path.schema), {})
        for sub_key, sub_value in wrapped.get(str(path.schema), {}).items():
            ext_attr = SCHEMAS[str(path.schema)].attr(sub_key)
            if ext_attr is not None:
                _set_attr(holder, ext_attr, sub_value, op)
        return
    target = resolve_target(rtype, path, dialect)
    if target is None:
        return
    attr = target.attr
    holder = doc.setdefault(target.extension, {}) if target.extension else doc
    if path.filter is None and path.sub is None:
        if op == "remove":
            if value is not None and attr.multi and dialect.tolerant:
                _remove_listed(holder, attr, value)  # Entra: the value lists what to remove
            else:
                holder.pop(attr.name, None)
        else:
            _set_attr(holder, attr, coerce(attr, value, attr.name, dialect), op)
    elif path.filter is None:
        sub = attr.child(str(path.sub))
        assert sub is not None  # checked by resolve_target
        where = f"{attr.name}.{sub.name}"
        current = holder.get(attr.name)
        if attr.multi:
            for element in current or []:
                if isinstance(element, dict):
                    _set_sub(element, sub, None if op == "remove" else coerce(sub, value, where, dialect), op)
        else:
            if op == "remove":
                if isinstance(current, dict):
                    current.pop(sub.name, None)
            else:
                holder.setdefault(attr.name, {})
                if not isinstance(holder[attr.name], dict):
                    holder[attr.name] = {}
                _set_sub(holder[attr.name], sub, coerce(sub, value, where, dialect), op)
    else:
        _apply_filtered(holder, attr, path, op, value, dialect)
    if target.extension and not holder:
        doc.pop(target.extension, None)
    for key in [k for k, v in holder.items() if v in EMPTY]:
        del holder[key]


def _set_sub(element: dict[str, Any], sub: Attr, value: Any, op: str) -> None:
    if value is None:
        element.pop(sub.name, None)
    else:
        element[sub.name] = value


def _set_attr(holder: dict[str, Any], attr: Attr, value: Any, op: str) -> None:
    if value is None:
        if op != "add":
            holder.pop(attr.name, None)
        return
    if op == "remove":
        holder.pop(attr.name, None)
        return
    if attr.multi:
        existing = holder.get(attr.name) or []
        if op == "replace":
            holder[attr.name] = list(value)
            return
        added = [v for v in value if v not in existing]
        _single_primary(existing, added)
        holder[attr.name] = existing + added
    elif attr.type == "complex" and isinstance(holder.get(attr.name), dict):
        holder[attr.name] = {**holder[attr.name], **value}
    else:
        holder[attr.name] = value


def _remove_listed(holder: dict[str, Any], attr: Attr, value: Any) -> None:
    listed = value if isinstance(value, list) else [value]
    keys = {str(v.get("value") if isinstance(v, dict) else v).lower() for v in listed}
    remaining = [
        e
        for e in holder.get(attr.name) or []
        if str(e.get("value") if isinstance(e, dict) else e).lower() not in keys
    ]
    holder[attr.name] = remaining


def _apply_filtered(
    holder: dict[str, Any], attr: Attr, path: PatchPath, op: str, value: Any, dialect: Dialect
) -> None:
    assert path.filter is not None
    elements: list[Any] = list(holder.get(attr.name) or [])

    def case_exact(name: str) -> bool:
        child = attr.child(name.split(".")[0])
        return bool(child and child.case_exact)

    matched = [e for e in elements if evaluate(path.filter, e, case_exact)]
    sub = attr.child(path.sub) if path.sub else None
    if op == "remove":
        if sub is None:
            holder[attr.name] = [e for e in elements if e not in matched]
        else:
            for element in matched:
                element.pop(sub.name, None)
        return
    if sub is not None:
        new_value = coerce(sub, value, f"{attr.name}.{sub.name}", dialect)
    else:
        new_value = coerce(attr, value, attr.name, dialect, element=True)
        if not isinstance(new_value, dict):
            raise invalid_value(f"'{path}' selects elements of '{attr.name}'; send an object.")
    if not matched:
        if not dialect.tolerant:
            raise no_target(f"No value of '{attr.name}' matches the filter of the path.")
        seed = _canonical_keys(attr, _filter_seed(path.filter))
        element = {**seed, **({sub.name: new_value} if sub else new_value)}
        element = {k: v for k, v in element.items() if v not in EMPTY}
        _single_primary(elements, [element])
        holder[attr.name] = [*elements, element]
        return
    for element in matched:
        if not isinstance(element, dict):
            continue
        if sub is not None:
            _set_sub(element, sub, new_value, op)
        else:
            element.update(new_value)
    _single_primary(elements, matched)
    holder[attr.name] = elements
