"""Format name (as written in the task file) -> encoder, and its decoder.

Each format module registers its factory under a name of `obsync.task.format_names.FORMAT_NAMES` (the list the
task file is validated against); `register` refuses any other name. Beside its encoder each format registers a
decoder factory (`register_decoder`, `obsync.formats.decoding`) that reads its messages back.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from obsync.core.errors import ConfigError
from obsync.formats.base import Encoder, EncoderContext
from obsync.formats.decoding import Decoder, DecoderFactory
from obsync.task.format_names import FORMAT_NAMES

_FACTORIES: dict[str, Callable[..., Encoder]] = {}
_DECODERS: dict[str, DecoderFactory] = {}


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


def register_decoder(name: str) -> Callable[[DecoderFactory], DecoderFactory]:
    """Register the decorated factory `f(encoder) -> Decoder` as the decoder of format `name`."""
    if name not in FORMAT_NAMES:
        raise ValueError(f"format {name!r} is not in obsync.task.format_names.FORMAT_NAMES; add it there")

    def deco(factory: DecoderFactory) -> DecoderFactory:
        _DECODERS[name] = factory
        return factory

    return deco


def decoder_for(name: str, ctx: EncoderContext, options: dict[str, Any] | None = None) -> Decoder:
    """The decoder of format `name` for messages written with the task's `format_options`."""
    encoder = encoder_for(name, ctx, options)
    try:
        factory = _DECODERS[name]
    except KeyError:
        raise ConfigError(f"field `format`: format {name!r} has no decoder; messages in it cannot be read back; "
                          f"formats with one: {', '.join(sorted(_DECODERS))}") from None
    return factory(encoder)


def registered_formats() -> list[str]:
    """The names of every format with an encoder."""
    _load_all()
    return sorted(_FACTORIES)


def _load_all() -> None:
    """Import every format module under formats/ so each registers itself."""
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):  # this package's folder: no import of it
        if mod.name not in ("base", "registry", "values", "decoding"):
            importlib.import_module(f"obsync.formats.{mod.name}")
