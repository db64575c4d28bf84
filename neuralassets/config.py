"""Configs to and from plain dicts (JSON / YAML), strictly.

Model parts are diffusers ``ConfigMixin`` classes whose ``__init__`` arguments are their config
(:func:`check_config_keys` refuses a key none of them takes). Run settings (training, the
synthetic generator, how the model's parts are built) are dataclasses with a comment per field:
:func:`from_dict` builds one from a dict, recursing into nested dataclass fields, turning lists
into tuples where the field is a tuple, and raising :class:`ConfigError` that names every
unknown key by its dotted path, so a typo in a YAML file never passes silently.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing
from typing import Any, TypeVar

from .errors import ConfigError

T = TypeVar("T")


def from_dict(cls: type[T], data: dict[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys keep their defaults.

    Args:
        cls: a dataclass type.
        data: field values; nested dataclass fields take nested dicts.
        where: dotted prefix used in error messages (``"model.denoiser"``).

    Raises:
        ConfigError: unknown keys (all named), or a nested value that is not a mapping.
    """
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(data).__name__}")
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(_join(where, k) for k in unknown)}; "
                          f"valid keys of {where or 'the config'}: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise ConfigError(f"{_join(where, name)}: expected a mapping, got {value!r}")
            kwargs[name] = from_dict(hint, value, _join(where, name))
        elif isinstance(value, list) and _is_tuple(hint):
            kwargs[name] = tuple(value)
        else:
            kwargs[name] = value
    return cls(**kwargs)


def to_dict(config: Any) -> dict[str, Any]:
    """Dataclass -> JSON-ready dict (tuples become lists)."""
    return _jsonable(dataclasses.asdict(config))


def config_arguments(cls: type) -> tuple[str, ...]:
    """The config keys of a diffusers ``ConfigMixin`` class: the arguments of its ``__init__``."""
    return tuple(name for name in inspect.signature(cls.__init__).parameters if name not in ("self", "kwargs"))


def check_config_keys(cls: type, data: dict[str, Any] | None, where: str, exclude: tuple[str, ...] = ()) -> None:
    """Refuse keys of ``data`` that are not config keys of ``cls`` (private ``_`` keys, which diffusers writes, pass).

    Raises:
        ConfigError: ``data`` is not a mapping, or names unknown keys (all named, with the valid ones).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    valid = [name for name in config_arguments(cls) if name not in exclude]
    unknown = sorted(k for k in data if not k.startswith("_") and k not in valid)
    if unknown:
        raise ConfigError(f"unknown config key(s): {', '.join(_join(where, k) for k in unknown)}; "
                          f"valid keys of {where}: {', '.join(sorted(valid))}")


def diffusers_config(model: Any) -> dict[str, Any]:
    """A diffusers model's config as JSON-ready values (private ``_`` keys dropped)."""
    return _jsonable({k: v for k, v in dict(model.config).items() if not k.startswith("_")})


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    return x


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin is tuple:
        return True
    return any(typing.get_origin(a) is tuple or a is tuple for a in typing.get_args(hint))


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key
