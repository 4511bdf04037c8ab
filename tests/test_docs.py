"""The generated configuration reference, the one source of defaults, and links that resolve."""

import dataclasses
import importlib.util
import re

import pytest

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


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub and the Hub give a page's headings: lowercased, punctuation dropped, spaces to hyphens."""
    anchors = set()
    for line in markdown.splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            anchors.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return anchors


@pytest.mark.parametrize("page", ["README.md", *(f"docs/{path.name}" for path in sorted((ROOT / "docs").glob("*.md")))])
def test_every_relative_link_and_picture_of_the_docs_resolves(page):
    """Relative links render on GitHub and on the Hub alike; each must name a file of the repository, and a
    #fragment a heading of that page."""
    source = ROOT / page
    text = re.sub(r"```.*?```", "", source.read_text(), flags=re.DOTALL)  # code blocks hold no links
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert links or page != "README.md"
    for link in links:
        if re.match(r"[a-z]+://|mailto:", link):
            continue
        path, _, fragment = link.partition("#")
        target = (source.parent / path).resolve() if path else source
        assert target.exists(), f"{page}: {link} names no file"
        if fragment and target.suffix == ".md":
            assert fragment in heading_anchors(target.read_text()), f"{page}: {link} names no heading of {target.name}"
