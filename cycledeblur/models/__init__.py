"""Network families, looked up by name from configs and from the config.json of saved models."""

from typing import Any

from .hub import HubModel, load_generator
from .kernel import KernelBlurGenerator
from .light import LightGenerator
from .nafnet import NAFNetGenerator
from .patchgan import MultiScaleDiscriminator, PatchDiscriminator
from .registry import DECODERS, DISCRIMINATORS, ENCODERS, GENERATORS, Registry
from .resnet import ResnetGenerator
from .unet import UnetGenerator
from .unit import UnitGenerator, UnitTranslator
from .wiener import WienerDeblurGenerator


def build_generator(name: str, **kwargs: Any) -> HubModel:
    """A freshly initialised generator of the registered family `name`."""
    return GENERATORS.get(name)(**kwargs)


def build_discriminator(name: str, **kwargs: Any) -> HubModel:
    """A freshly initialised discriminator of the registered family `name`."""
    return DISCRIMINATORS.get(name)(**kwargs)


__all__ = [
    "DECODERS",
    "DISCRIMINATORS",
    "ENCODERS",
    "GENERATORS",
    "HubModel",
    "KernelBlurGenerator",
    "LightGenerator",
    "MultiScaleDiscriminator",
    "NAFNetGenerator",
    "PatchDiscriminator",
    "Registry",
    "ResnetGenerator",
    "UnetGenerator",
    "UnitGenerator",
    "UnitTranslator",
    "WienerDeblurGenerator",
    "build_discriminator",
    "build_generator",
    "load_generator",
]
