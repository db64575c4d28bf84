"""One exception family for the whole library.

Every error raised on bad input is a :class:`NeuralAssetsError`, so callers can catch
the family at once; the subclass says which kind of input was wrong and the message
names the offending file, field or object and what was expected.
"""

from __future__ import annotations


class NeuralAssetsError(Exception):
    """Base class of every error the library raises on purpose."""


class ValidationError(NeuralAssetsError, ValueError):
    """A value (pose, size, setting, tensor shape) is outside what is accepted."""


class SceneFormatError(NeuralAssetsError):
    """A saved Scene folder or archive is missing files, corrupt or of an unknown version."""


class AssetNotFoundError(NeuralAssetsError, KeyError):
    """An asset id that is not in the scene was asked for."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class WeightsError(NeuralAssetsError):
    """Model weights are missing, truncated, of the wrong format or do not match the config."""


class ConfigError(NeuralAssetsError, ValueError):
    """A configuration file or dataclass field is invalid."""


class VideoError(NeuralAssetsError):
    """A video or image sequence cannot be read or is unusable."""
