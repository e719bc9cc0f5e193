"""Format name (as written in the task file) -> encoder.

Each format module registers its factory under a name of `obsync.task.format_names.FORMAT_NAMES` (the list the
task file is validated against); `register` refuses any other name.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obsync.core.errors import ConfigError
from obsync.formats.base import Encoder, EncoderContext
from obsync.task.format_names import FORMAT_NAMES

_FACTORIES: dict[str, Callable[..., Encoder]] = {}


def register(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    """Register the decorated factory as format `name` (one of `FORMAT_NAMES`)."""
    if name not in FORMAT_NAMES:
        raise ValueError(f"format {name!r} is not in obsync.task.format_names.FORMAT_NAMES; add it there")

    def deco(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _FACTORIES[name] = factory
        return factory

    return deco


def encoder_for(name: str, ctx: EncoderContext, options: dict[str, Any] | None = None) -> Encoder:
    """The encoder registered as `name`, built with the task's `format_options`."""
    _load_all()
    try:
        factory = _FACTORIES[name]
    except KeyError:
        valid = ", ".join(sorted(_FACTORIES))
        raise ConfigError(f"field `format`: {name!r} is not available; valid: {valid}") from None
    return factory(ctx, **(options or {}))


def registered_formats() -> list[str]:
    """The names of every format with an encoder."""
    _load_all()
    return sorted(_FACTORIES)


def _load_all() -> None:
    """Import every format module under formats/ so each registers itself."""
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this package's folder: no import of it
        if mod.name not in ("base", "registry", "values"):
            importlib.import_module(f"obsync.formats.{mod.name}")
