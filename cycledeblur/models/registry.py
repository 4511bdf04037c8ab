"""Network families by name, so that configs and saved config.json files can refer to them."""

import inspect
from collections.abc import Callable
from typing import TypeVar

from ..errors import ConfigError

ModelClass = TypeVar("ModelClass", bound=type)


class Registry:
    """Classes of one kind of network ("generator", "discriminator", "encoder", "decoder"), keyed by family name."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._classes: dict[str, type] = {}

    def register(self, name: str) -> Callable[[ModelClass], ModelClass]:
        """Class decorator: file the class under `name` and record it as the class's `architecture`."""

        def add(cls: ModelClass) -> ModelClass:
            if name in self._classes:
                raise ValueError(f"{self.kind} {name!r} is already registered by {self._classes[name].__qualname__}")
            cls.architecture = name
            self._classes[name] = cls
            return cls

        return add

    def get(self, name: str) -> type:
        try:
            return self._classes[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid {self.kind}s: {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The constructor's parameters, without `self`, with annotations resolved to types."""
        signature = inspect.signature(self.get(name).__init__, eval_str=True)
        return {key: parameter for key, parameter in signature.parameters.items() if key != "self"}


GENERATORS = Registry("generator")
DISCRIMINATORS = Registry("discriminator")
ENCODERS = Registry("encoder")  # the image -> latent halves of the `unit` generator
DECODERS = Registry("decoder")  # its latent -> image halves
