"""Optional dependencies: imported only where a feature needs them, and only once.

A daemon that does not use a feature never pays its import, and a module that
is missing is remembered, so that the import is not tried again on every use.
"""

from __future__ import annotations

import importlib
from types import ModuleType

_MISSING = object()
_cache: dict[str, object] = {}


def load(name: str) -> ModuleType | None:
    """The module ``name`` if it can be imported, else None."""
    module = _cache.get(name)
    if module is None:
        try:
            module = importlib.import_module(name)
        except ImportError:
            module = _MISSING
        _cache[name] = module
    return module if isinstance(module, ModuleType) else None
