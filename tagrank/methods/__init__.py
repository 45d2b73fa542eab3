"""Methods: small registered classes sharing one trainer, one ranker and one evaluator.

A method is an ``nn.Module`` on pooled backbone features that declares its ``Options`` dataclass, its
loss, and how it scores labels. Zero-shot methods score *word vectors*, so they rank any vocabulary;
the others score their training labels only. Add a method by adding a module here that subclasses
:class:`Method` and decorates it with :func:`register` (modules are discovered on first use).
"""

from __future__ import annotations

import importlib
import pkgutil

from tagrank.errors import TagrankError
from tagrank.methods.base import METHODS, Method, register

__all__ = ["METHODS", "Method", "get_method", "method_names", "register"]

_discovered = False


def _discover() -> None:
    global _discovered
    if not _discovered:
        for info in pkgutil.iter_modules(__path__):
            if info.name not in ("base", "losses"):  # not methods
                importlib.import_module(f"{__name__}.{info.name}")
        _discovered = True


def method_names() -> list[str]:
    _discover()
    return sorted(METHODS)


def get_method(name: str) -> type[Method]:
    _discover()
    if name not in METHODS:
        raise TagrankError(f"unknown method {name!r} (choose from {', '.join(sorted(METHODS))})")
    return METHODS[name]
