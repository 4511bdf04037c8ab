"""Model cards from one template: the one in a run's generator/ folder, written when training ends, and the one at
the top of a Hub repo made by `cycledeblur push` (which adds the repo's files, an evaluation and a data card)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import ModelCard, ModelCardData

from .. import __version__
from ..config import Config, config_to_dict

DEFAULT_LICENSE = "apache-2.0"
PLACEHOLDER_MODEL_ID = "PATH_OR_HUB_ID"  # what a card's usage snippets load when the model has no Hub id yet

CARD_TEMPLATE = """---
{{ card_data }}
---

# cycledeblur generator: blurred -> sharp

A deblurring generator (`{{ architecture }}`) trained with the Python package `cycledeblur` {{ version }}{% if hub_repo %}, published as
[{{ hub_repo }}](https://huggingface.co/{{ hub_repo }}){% endif %}: {{ recipe }}

- Training steps: {{ steps }}
{% if synthetic_blur %}- Pairs blurred in the loader (`data.synthetic_blur`) from the sharp photos `{{ sharp_source }}`
{% else %}- Blurred data: `{{ blur_source }}`; sharp data: `{{ sharp_source }}`
{% endif %}{% if data_card %}- Data card: {{ data_card }}
{% endif %}- Crop size: {{ crop_size }}, channels: {{ channels }}, mixed precision: {{ mixed_precision }}

## Use

```bash
cycledeblur deblur --model {{ model_id }} photo.jpg --out deblurred/
```

```python
from cycledeblur.models import load_generator

generator = load_generator("{{ model_id }}")  # inputs: N x C x H x W in [-1, 1]
```
{% if files %}
## Files

{{ files }}
{% endif %}{% if evaluation %}
## Evaluation

{{ evaluation }}
{% endif %}{% if losses %}
## Metrics

{{ losses }}
{% endif %}{% if sections %}
{{ sections }}
{% endif %}
## Training configuration

```yaml
{{ config_yaml }}```

## Licence

The weights are released under `{{ license }}`. The training images keep their own licences{% if data_card %}: see
the data card{% endif %}.
"""

RECIPES = {
    "unpaired": "a CycleGAN with cycle-consistency, identity, total-variation and color losses, trained on unrelated "
    "blurred and sharp photos.",
    "paired": "a conditional GAN (pix2pix) with an L1 content loss, trained on blurred/sharp pairs.",
    "unit": "UNIT, a variational autoencoder per domain with one shared latent space, adversarial and cycle losses, "
    "trained on unrelated blurred and sharp photos; it decodes the posterior mean of the blurred photo's code as sharp.",
}
# Paired mode with `loss.adv_deblur: 0`: the discriminator is built but never trains the generator.
SUPERVISED_RECIPE = "supervised restoration: an L1 content loss to the sharp twin of each blurred image, no discriminator."
RECIPE_TAGS = {"unpaired": "cyclegan", "paired": "pix2pix", "unit": "unit"}


def losses_table(losses: dict[str, float]) -> str:
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in losses.items())
    return "| metric | value |\n| --- | --- |\n" + rows


def evaluation_table(report: dict[str, Any]) -> str:
    """The means of a `cycledeblur evaluate --json` report as a Markdown table: input, output, and the change."""
    # Imported here: the training loop, which writes cards too, need not load the metrics' libraries.
    from ..evaluation import _COLUMNS as METRIC_COLUMNS

    inputs, outputs = report["input"], report["output"]
    columns = {metric: METRIC_COLUMNS.get(metric, (metric, ".4g")) for metric in inputs}
    paired = report["kind"] == "paired"
    what = "paired images (blurred input against its sharp twin)" if paired else "images, no reference: sharpness"

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    lines = [
        f"`cycledeblur evaluate` on {report['n_images']} {what}, means:",
        "",
        row("images", [title for title, _ in columns.values()]),
        "| --- |" + " ---: |" * len(columns),
        row("blurred input", [format(inputs[m], spec) for m, (_, spec) in columns.items()]),
        row("model output", [format(outputs[m], spec) for m, (_, spec) in columns.items()]),
    ]
    if paired:
        lines.append(row("gain", [format(outputs[m] - inputs[m], "+" + spec) for m, (_, spec) in columns.items()]))
    else:
        lines.append(row("output / input", [f"{outputs[m] / max(inputs[m], 1e-12):.2f}x" for m in columns]))
    if report.get("n_failed"):
        lines += ["", f"{report['n_failed']} more images could not be scored and are not in the means."]
    return "\n".join(lines)


def render_card(
    config: Config,
    architecture: str,
    steps: int,
    *,
    model_id: str = PLACEHOLDER_MODEL_ID,
    license: str = DEFAULT_LICENSE,
    losses: dict[str, float] | None = None,
    evaluation: dict[str, Any] | None = None,
    data_card: str | None = None,
    files: str | None = None,
    sections: str | None = None,
) -> ModelCard:
    """The card of a deblurring generator of `architecture` trained by `config` for `steps` steps. `evaluation` is
    a `cycledeblur evaluate --json` report, `data_card` Markdown (a link), `files` a Markdown table of the repo's
    files and `sections` more Markdown sections (before the training configuration); the sections of those not
    given are left out."""
    tags = ["image-deblurring", RECIPE_TAGS[config.train.mode], "image-to-image"]
    semi_paired = " A few true pairs added an L1 term (semi-paired)." if config.data.paired_blur else ""
    supervised = config.train.mode == "paired" and config.loss.adv_deblur == 0
    return ModelCard.from_template(
        ModelCardData(library_name="cycledeblur", license=license, tags=tags, pipeline_tag="image-to-image"),
        template_str=CARD_TEMPLATE,
        architecture=architecture,
        recipe=(SUPERVISED_RECIPE if supervised else RECIPES[config.train.mode]) + semi_paired,
        version=__version__,
        hub_repo=None if model_id == PLACEHOLDER_MODEL_ID else model_id,
        steps=steps,
        blur_source=config.data.blur,
        sharp_source=config.data.sharp,
        synthetic_blur=config.data.synthetic_blur is not None,
        data_card=data_card,
        crop_size=config.data.crop_size,
        channels=config.data.channels,
        mixed_precision=config.train.mixed_precision,
        model_id=model_id,
        files=files,
        sections=sections,
        evaluation=evaluation_table(evaluation) if evaluation else None,
        losses=losses_table(losses) if losses else None,
        config_yaml=yaml.safe_dump(config_to_dict(config), sort_keys=False),
        license=license,
    )


def write_generator(generator, folder: Path, config: Config, steps: int, metrics: dict[str, float]) -> None:
    """`save_pretrained` the generator into `folder` with a model card (written first: the mixin keeps it)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = render_card(config, type(generator).architecture, steps, losses=metrics)
    card.save(folder / "README.md")
    generator.save_pretrained(folder)
