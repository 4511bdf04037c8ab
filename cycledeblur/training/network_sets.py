"""The networks each training mode trains, by role: the one place that says what they are called, the order they go
through `accelerator.prepare` (which numbers them in a checkpoint: model, model_1, ...), and where a repo made by
`cycledeblur push` keeps each of them. The loops, `checkpoints`, `init_from` and `publish` all read it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from accelerate import Accelerator
from torch import nn

DELIVERED = "deblur"  # the blurred -> sharp generator, which a run delivers and a pushed repo holds at its top


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    pushed_folder: str = ""  # "" for the delivered generator, at the top of a pushed repo


@dataclass(frozen=True)
class NetworkSet:
    roles: tuple[Role, ...]  # in `accelerator.prepare` order
    carrier: str = DELIVERED
    """The role whose network holds the delivered generator: the generator itself, or (UNIT) the translator of
    both directions, which is what trains and what the weight average follows."""
    delivered_attribute: str = ""
    """The carrier's attribute that is the delivered generator ("": the carrier itself)."""

    @property
    def names(self) -> list[str]:
        return [role.name for role in self.roles]

    @property
    def partners(self) -> list[Role]:
        """The roles a pushed repo keeps in subfolders: every network but the delivered generator, which is at its top
        (UNIT's translator, which holds the delivered generator among its parts, goes up whole beside it)."""
        return [role for role in self.roles if role.pushed_folder]

    def delivered(self, carrier: nn.Module) -> nn.Module:
        """The blurred -> sharp generator in (or being) the carrier's network, unwrapped."""
        return getattr(carrier, self.delivered_attribute) if self.delivered_attribute else carrier

    def role(self, name: str) -> Role:
        return next(role for role in self.roles if role.name == name)

    def checkpoint_files(self) -> dict[str, str]:
        """Role -> the file Accelerate's `save_state` writes its weights to."""
        return {name: "model.safetensors" if index == 0 else f"model_{index}.safetensors" for index, name in enumerate(self.names)}

    def prepare(self, accelerator: Accelerator, networks: dict[str, nn.Module], *others: Any) -> tuple[dict[str, nn.Module], list]:
        """`accelerator.prepare` the networks in this set's order, then `others` (optimizers, schedulers, loaders),
        in one call; returns the prepared networks by role and the prepared `others`."""
        if sorted(networks) != sorted(self.names):
            raise ValueError(f"networks {sorted(networks)} are not this set's roles {self.names}")
        prepared = accelerator.prepare(*(networks[name] for name in self.names), *others)
        return dict(zip(self.names, prepared)), list(prepared[len(self.names) :])


UNPAIRED = NetworkSet(
    (
        Role(DELIVERED, "the blurred -> sharp generator"),
        Role("reblur", "the sharp -> blurred generator", "reblur_generator"),
        Role("discriminator_sharp", "the discriminator of sharp photos", "discriminator_sharp"),
        Role("discriminator_blurred", "the discriminator of blurred photos", "discriminator_blurred"),
    )
)
PAIRED = NetworkSet(
    (
        Role(DELIVERED, "the blurred -> sharp generator"),
        Role("discriminator", "the conditional discriminator of (blurred, sharp) pairs", "discriminator"),
    )
)
UNIT = NetworkSet(
    (
        Role("translator", "the UNIT translator: both domains' encoders and decoders, with their shared layers", "translator"),
        Role("discriminator_sharp", "the discriminator of sharp photos", "discriminator_sharp"),
        Role("discriminator_blurred", "the discriminator of blurred photos", "discriminator_blurred"),
    ),
    carrier="translator",
    delivered_attribute="blurred_to_sharp",
)
NETWORK_SETS = {"unpaired": UNPAIRED, "paired": PAIRED, "unit": UNIT}


def pushed_folders() -> dict[str, str]:
    """Role -> subfolder, over every mode: what a pushed repo may hold beside its delivered generator."""
    return {role.name: role.pushed_folder for network_set in NETWORK_SETS.values() for role in network_set.partners}
