"""HubModel, the base of every network: config.json + model.safetensors in a folder or a Hub repo."""

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from huggingface_hub import PyTorchModelHubMixin, constants, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, HFValidationError, LocalEntryNotFoundError
from safetensors import SafetensorError
from safetensors.torch import load_model
from torch import nn

from ..errors import UserError, first_line
from ..json_files import read_json_object
from ..pretrained import resolve_model
from .registry import GENERATORS

CONFIG_NAME = constants.CONFIG_NAME
WEIGHTS_NAME = constants.SAFETENSORS_SINGLE_FILE
DOWNLOAD_ARGS = ("revision", "cache_dir", "force_download", "local_files_only", "token")
JSON_SCALARS = (bool, int, float, str)

# `model_description` is the slot the training code fills through save_pretrained(..., model_card_kwargs=...).
Model = TypeVar("Model", bound="HubModel")

MODEL_CARD_TEMPLATE = """---
{{ card_data }}
---

{{ model_description | default("An image deblurring network trained with the Python package `cycledeblur`.", true) }}
"""


class HubModel(
    nn.Module,
    PyTorchModelHubMixin,
    library_name="cycledeblur",
    tags=["image-deblurring", "cyclegan"],
    model_card_template=MODEL_CARD_TEMPLATE,
):
    """A network whose constructor arguments round-trip through config.json; subclasses are registered families."""

    architecture: ClassVar[str]  # set by Registry.register

    def init_weights(self) -> None:
        """CycleGAN's init: conv and linear weights N(0, 0.02), norm scales N(1, 0.02), biases 0."""
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, (nn.BatchNorm2d, nn.InstanceNorm2d)) and module.weight is not None:
                nn.init.normal_(module.weight, 1.0, 0.02)
            else:
                continue
            if module.bias is not None:
                nn.init.zeros_(module.bias)

    def __new__(cls: type[Model], *args: Any, **kwargs: Any) -> Model:
        # The mixin records the constructor arguments for config.json, but it replaces any that is not a JSON value
        # (a numpy int, say) by its default without a word, so the saved model would reload as another network.
        passed = inspect.signature(cls.__init__).bind(None, *args, **kwargs).arguments  # None binds `self`
        invalid = [name for name, value in passed.items() if name != "self" and not _is_json_value(value)]
        if invalid:
            raise TypeError(f"{cls.__name__} arguments must be int, float, str or bool, or tuples of them: {', '.join(invalid)}")
        return super().__new__(cls, *args, **kwargs)

    def config_dict(self) -> dict[str, Any]:
        """What config.json holds: the constructor arguments and the family's name."""
        return {**self._hub_mixin_config, "architecture": self.architecture}

    def save_pretrained(self, save_directory: str | Path, **kwargs: Any) -> Any:
        """The mixin's `save_pretrained`, with a config.json that names the family (`config_dict`)."""
        return super().save_pretrained(save_directory, config=self.config_dict(), **kwargs)

    @classmethod
    def from_pretrained(cls: type[Model], pretrained_model_name_or_path: str | Path, **kwargs: Any) -> Model:
        """Rebuild from a folder or Hub repo id written by `save_pretrained`; the model comes back in eval mode."""
        # The mixin builds a default-sized model when config.json is missing, and lets Hub errors escape raw.
        download_args = {key: kwargs[key] for key in DOWNLOAD_ARGS if key in kwargs}
        read_json_object(resolve_file(pretrained_model_name_or_path, CONFIG_NAME, **download_args))
        return super().from_pretrained(pretrained_model_name_or_path, **kwargs)

    @classmethod
    def _from_pretrained(
        cls: type[Model],
        *,
        model_id: str,
        revision: str | None,
        cache_dir: str | Path | None,
        force_download: bool,
        local_files_only: bool,
        token: str | bool | None,
        config: dict[str, Any],
        map_location: str = "cpu",
        **model_kwargs: Any,
    ) -> Model:
        # Unlike the mixin's: safetensors only (no pickle fallback), strict, and no print().
        if config.get("architecture") != cls.architecture:
            raise UserError(f"{model_id} holds a {config.get('architecture')!r} model, not a {cls.architecture!r}")
        weights = resolve_file(
            model_id,
            WEIGHTS_NAME,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
        try:
            model = cls(**model_kwargs)
        except (TypeError, ValueError) as error:  # a hand-edited config.json: a wrong type or an unknown option
            raise UserError(f"{model_id}/{CONFIG_NAME} does not describe a valid {cls.__name__}: {error}") from None
        try:
            load_model(model, weights, strict=True, device=map_location)
        except SafetensorError as error:
            raise UserError(f"{weights} is not a valid safetensors file (truncated or corrupt?): {error}") from None
        except RuntimeError as error:
            raise UserError(f"{weights} does not fit the {cls.__name__} in {CONFIG_NAME}: {error}") from None
        return model.eval()


def _is_json_value(value: Any) -> bool:
    if isinstance(value, (tuple, list)):
        return all(isinstance(item, JSON_SCALARS) for item in value)
    return isinstance(value, JSON_SCALARS)


def resolve_file(path_or_hub_id: str | Path, filename: str, **download_args: Any) -> Path:
    """`filename` in a local folder, or fetched from the Hub repo of that id; a UserError says what is missing."""
    folder = Path(path_or_hub_id)
    if folder.is_dir():
        if not (folder / filename).is_file():
            raise UserError(f"folder {folder} has no {filename}")
        return folder / filename
    with hub_errors(f"{path_or_hub_id} ({filename})"):
        return Path(hf_hub_download(str(path_or_hub_id), filename, **download_args))


# What a Hub call can meet besides the above: the Hub's refusals (HfHubHTTPError), no connection at all (the base
# error of the HTTP library huggingface_hub is built on, which HfHubHTTPError extends: httpx's or requests'), offline
# mode (OSError).
_HUB_CALL_ERRORS = (HfHubHTTPError, HfHubHTTPError.__bases__[0], OSError)


@contextmanager
def hub_errors(subject: str) -> Iterator[None]:
    """Turn what huggingface_hub raises in the block into one UserError line: `subject` (what was asked of the Hub,
    naming the repo), then why."""
    try:
        yield
    except HFValidationError:
        raise UserError(f"{subject}: neither a folder nor a valid Hub repo id") from None
    except LocalEntryNotFoundError:
        raise UserError(
            f"{subject}: not a folder, and not in the local Hub cache while the Hub cannot be reached (no network, or HF_HUB_OFFLINE=1)"
        ) from None
    except _HUB_CALL_ERRORS as error:
        raise UserError(f"{subject}: {first_line(error)}") from None


def load_generator(path_or_hub_id: str | Path, *, revision: str | None = None) -> HubModel:
    """A generator saved with `save_pretrained`, of whichever family its config.json names, in eval mode. The name
    of a bundled model (`general`) loads its folder, unless a local path of that name exists."""
    path_or_hub_id = resolve_model(path_or_hub_id)
    config_file = resolve_file(path_or_hub_id, CONFIG_NAME, revision=revision)
    architecture = read_json_object(config_file).get("architecture")
    if architecture not in GENERATORS.names():
        raise UserError(
            f"{path_or_hub_id} does not hold a generator: its {CONFIG_NAME} names architecture {architecture!r};"
            f" generators: {', '.join(GENERATORS.names())}"
        )
    return GENERATORS.get(architecture).from_pretrained(path_or_hub_id, revision=revision)
