"""The detectors by name, for configuration: `create("ewma_zscore", alpha=0.05)`."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from detectors.base import Detector
from detectors.changepoint import LevelShift
from detectors.ensemble import DefaultEnsemble
from detectors.ewma import EwmaZScore
from detectors.robust import RobustMad
from detectors.seasonal import SeasonalBaseline

__all__ = ["DetectorNotFound", "DetectorRegistry", "default_registry"]


class DetectorNotFound(KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DetectorRegistry:
    """Names → detector factories; duplicates are rejected, unknown names list what exists."""

    def __init__(self) -> None:
        self._factories: dict[str, Callable[..., Detector]] = {}

    def register(self, name: str, factory: Callable[..., Detector]) -> None:
        if name in self._factories:
            raise ValueError(f"detector {name!r} is already registered")
        self._factories[name] = factory

    @property
    def names(self) -> list[str]:
        return sorted(self._factories)

    def parameters(self, name: str) -> dict[str, Any]:
        """The factory's keyword parameters and their defaults (for docs and error messages)."""
        factory = self._get(name)
        found: dict[str, Any] = {}
        for fn in [c.__init__ for c in factory.__mro__] if inspect.isclass(factory) else [factory]:
            params = inspect.signature(fn).parameters.values()
            for p in params:
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
                    found.setdefault(p.name, None if p.default is p.empty else p.default)
            if not any(p.kind is p.VAR_KEYWORD for p in params):
                break  # this signature is complete; base classes add nothing callers can pass
        return found

    def create(self, name: str, **params: Any) -> Detector:
        """A new detector; raises DetectorNotFound, or TypeError/ValueError for bad parameters."""
        return self._get(name)(**params)

    def _get(self, name: str) -> Callable[..., Detector]:
        try:
            return self._factories[name]
        except KeyError:
            raise DetectorNotFound(f"detector {name!r} not found; available: {', '.join(self.names)}") from None


def default_registry() -> DetectorRegistry:
    registry = DetectorRegistry()
    for cls in (DefaultEnsemble, EwmaZScore, RobustMad, LevelShift, SeasonalBaseline):
        registry.register(cls.name, cls)
    return registry
