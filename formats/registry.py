"""Format name (as written in the task file) -> encoder."""

from __future__ import annotations

from typing import Any, Callable

from formats.base import Encoder
from obsync.errors import ConfigError

_FACTORIES: dict[str, Callable[..., Encoder]] = {}


def register(name: str) -> Callable[[Callable[..., Encoder]], Callable[..., Encoder]]:
    def deco(factory: Callable[..., Encoder]) -> Callable[..., Encoder]:
        _FACTORIES[name] = factory
        return factory

    return deco


def encoder_for(name: str, **options: Any) -> Encoder:
    """The encoder registered as `name`; the error lists the valid names."""
    import formats.default  # noqa: F401  (registers itself)

    try:
        factory = _FACTORIES[name]
    except KeyError:
        valid = ", ".join(sorted(_FACTORIES))
        raise ConfigError(f"field `format`: {name!r} is not available; valid: {valid}") from None
    return factory(**options)
