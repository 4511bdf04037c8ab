"""The final blur->sharp generator, saved with `save_pretrained` and a model card describing how it was made."""

from __future__ import annotations

from pathlib import Path

import yaml
from huggingface_hub import ModelCard, ModelCardData

from ..config import Config, config_to_dict

CARD_TEMPLATE = """---
{{ card_data }}
---

# cycledeblur generator: blurred -> sharp

A deblurring generator (`{{ architecture }}`) trained with [cycledeblur]({{ repo_url }}): {{ recipe }}

- Training steps: {{ steps }}
- Blurred data: `{{ blur_source }}`; sharp data: `{{ sharp_source }}`
- Crop size: {{ crop_size }}, channels: {{ channels }}, mixed precision: {{ mixed_precision }}

## Use

```bash
cycledeblur deblur --model PATH_OR_HUB_ID photo.jpg --out deblurred/
```

```python
from cycledeblur.models import load_generator
generator = load_generator("PATH_OR_HUB_ID")  # inputs: N x C x H x W in [-1, 1]
```

## Metrics

{{ metrics_table }}

## Training configuration

```yaml
{{ config_yaml }}```
"""


def metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "No metrics recorded."
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items())
    return "| metric | value |\n| --- | --- |\n" + rows


RECIPES = {
    "unpaired": "a CycleGAN with cycle-consistency, identity, total-variation and color losses, trained on unrelated "
    "blurred and sharp photos.",
    "paired": "a conditional GAN (pix2pix) with an L1 content loss, trained on blurred/sharp pairs.",
}
RECIPE_TAGS = {"unpaired": "cyclegan", "paired": "pix2pix"}


def write_generator(generator, folder: Path, config: Config, steps: int, metrics: dict[str, float]) -> None:
    """`save_pretrained` the generator into `folder` with a model card (written first: the mixin keeps it)."""
    folder.mkdir(parents=True, exist_ok=True)
    card = ModelCard.from_template(
        ModelCardData(library_name="cycledeblur", license="apache-2.0", tags=["image-deblurring", RECIPE_TAGS[config.train.mode], "image-to-image"], pipeline_tag="image-to-image"),
        template_str=CARD_TEMPLATE,
        architecture=type(generator).architecture,
        recipe=RECIPES[config.train.mode] + (" A few true pairs added an L1 term (semi-paired)." if config.data.paired_blur else ""),
        repo_url="https://github.com/cycledeblur/cycledeblur",
        steps=steps,
        blur_source=config.data.blur,
        sharp_source=config.data.sharp,
        crop_size=config.data.crop_size,
        channels=config.data.channels,
        mixed_precision=config.train.mixed_precision,
        metrics_table=metrics_table(metrics),
        config_yaml=yaml.safe_dump(config_to_dict(config), sort_keys=False),
    )
    card.save(folder / "README.md")
    generator.save_pretrained(folder)
