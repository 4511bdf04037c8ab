"""The generated configuration reference and the one source of defaults."""

import dataclasses
import importlib.util

from cycledeblur.config import Config, NetworkConfig, SyntheticBlurConfig, config_to_dict, load_config
from cycledeblur.models import DISCRIMINATORS, GENERATORS

from .conftest import ROOT


def _generator_module():
    spec = importlib.util.spec_from_file_location("generate_configuration", ROOT / "docs" / "generate_configuration.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_configuration_page_is_up_to_date():
    page = ROOT / "docs" / "configuration.md"
    assert page.read_text() == _generator_module().render(), "stale: run python docs/generate_configuration.py"


def test_the_configuration_page_documents_every_key():
    text = (ROOT / "docs" / "configuration.md").read_text()
    resolved = config_to_dict(Config())
    for section in ("data", "loss", "train", "model"):
        for key in resolved[section]:
            assert f"`{section}.{key}`" in text
    for item in dataclasses.fields(SyntheticBlurConfig):
        assert f"`data.synthetic_blur.{item.name}`" in text
    for name in GENERATORS.names() + DISCRIMINATORS.names():
        assert f"| `{name}`: " in text


def _with_constructor_defaults(network: NetworkConfig, registry) -> dict:
    defaults = {key: p.default for key, p in registry.parameters(network.name).items() if p.default is not p.empty}
    return {"name": network.name, **defaults, **network.options}


def test_configs_default_yaml_spells_out_the_dataclass_defaults():
    from_file, from_code = load_config(ROOT / "configs" / "default.yaml"), Config()
    for network, registry in (("generator", GENERATORS), ("discriminator", DISCRIMINATORS)):
        assert _with_constructor_defaults(getattr(from_file.model, network), registry) == _with_constructor_defaults(
            getattr(from_code.model, network), registry
        )
        for config in (from_file, from_code):
            setattr(config.model, network, None)
    assert config_to_dict(from_file) == config_to_dict(from_code)
