"""Add options: read them from a mapping (the config's ``defaults``, a folder's
``folders.options``, a queue file) and layer them.

Pure. The rules for each key live once, in ``schema.yaml``'s ``$defs/add_options``:
``check-config`` reports a bad value in the config from there, and a queue file's
own options are checked against the same definition (a bad one is ``bad_shape``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import fields
from importlib import resources
from typing import Any

import jsonschema
import yaml

from magnetd.model import NO_OPTIONS, AddOptions, Rejected

KEYS: tuple[str, ...] = tuple(f.name for f in fields(AddOptions))
"""Every add option key, in the order the README lists them."""


@functools.cache
def _definition() -> dict[str, Any]:
    text = resources.files("magnetd").joinpath("schema.yaml").read_text(encoding="utf-8")
    schema: dict[str, Any] = yaml.safe_load(text)
    definition: dict[str, Any] = schema["$defs"]["add_options"]
    return definition


@functools.cache
def _validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(_definition())


@functools.cache
def _descriptions() -> dict[str, str]:
    properties: dict[str, Any] = _definition()["properties"]
    return {key: str(spec.get("description", "")) for key, spec in properties.items()}


def _tags(value: Any) -> tuple[str, ...] | None:
    """Tags from a list of names or a comma-separated string; None if not given."""
    if value is None:
        return None
    names = value.split(",") if isinstance(value, str) else value
    return tuple(t.strip() for t in names if t.strip())


def build(spec: Mapping[str, Any] | None) -> AddOptions:
    """The options in ``spec``, already valid (the schema accepted it); missing keys stay unset."""
    if not spec:
        return NO_OPTIONS
    values = {key: spec[key] for key in KEYS if spec.get(key) is not None}
    if "tags" in values:
        values["tags"] = _tags(values["tags"])
    if "ratio_limit" in values:
        values["ratio_limit"] = float(values["ratio_limit"])
    return AddOptions(**values)


def from_queue_file(obj: Mapping[str, Any]) -> AddOptions:
    """A queue file's own options (other keys are its own business), else Rejected ``bad_shape``."""
    spec = {key: obj[key] for key in KEYS if obj.get(key) is not None}
    error = jsonschema.exceptions.best_match(_validator().iter_errors(spec))
    if error is not None:
        key = str(error.absolute_path[0]) if error.absolute_path else "options"
        expected = _descriptions().get(key, "")
        raise Rejected("bad_shape", f"{key!r}: {error.message[:200]} (expected {expected})")
    return build(spec)


def layered(defaults: AddOptions, folders: Mapping[str, AddOptions], rel: str, own: AddOptions) -> AddOptions:
    """The options a file at ``rel`` (relative to the inbox) is added with.

    Each level over the one before: ``defaults``; the sub-folder (its path as category
    unless its ``folders.options`` entry names one; that entry's tags added to the
    defaults' tags); the file's ``own`` keys. A sub-folder's results are cached (a bulk drop asks the
    same question for every file): ``folders`` is told apart by identity, as the config's
    mapping is never changed once loaded.
    """
    folder = os.path.dirname(rel)
    if not folder:  # no folder level: the file's own over the defaults, nothing worth a cache
        return own.over(defaults)
    return _layered(defaults, _Same(folders), tuple(folder.split(os.sep)), own)


class _Same:
    """A cache key that stands for one object, whatever its contents (a mapping is unhashable)."""

    __slots__ = ("value",)

    def __init__(self, value: Mapping[str, AddOptions]) -> None:
        self.value = value

    def __hash__(self) -> int:
        return id(self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.value is self.value


@functools.lru_cache(maxsize=1024)
def _layered(defaults: AddOptions, same: _Same, parts: tuple[str, ...], own: AddOptions) -> AddOptions:
    name = "/".join(parts)
    folder = same.value.get(name, NO_OPTIONS)
    if folder.category is None:
        folder = AddOptions(category=name).over(folder)
    if folder.tags is not None and defaults.tags:
        merged = tuple(dict.fromkeys((*defaults.tags, *folder.tags)))
        folder = AddOptions(tags=merged).over(folder)
    return own.over(folder.over(defaults))
