"""`cycledeblur push`: a finished run as a Hugging Face Hub model repo.

The repo's top holds the delivered blurred -> sharp generator (RUN/generator's config.json and model.safetensors,
where `load_generator("USER/NAME")` reads them) and a model card (README.md). With the partner networks, each one
(the reblurring generator, the discriminators) is a subfolder of its own (`training/network_sets.py`), rebuilt from the run's
newest checkpoint. The whole folder is staged on disk first, then uploaded in one commit; `stage_run` alone is the
dry run. A token goes to `HfApi` and nowhere else: not into a file, a message or a commit.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from huggingface_hub import HfApi
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id

from .config import Config, load_config
from .errors import UserError, first_line
from .evaluation import EVALUATION_FILE, read_evaluation
from .models import DISCRIMINATORS, HubModel, build_discriminator, build_generator, load_generator
from .models.hub import CONFIG_NAME, WEIGHTS_NAME, hub_errors
from .training.checkpoints import list_checkpoints, network_weights
from .training.network_sets import NETWORK_SETS, pushed_folders
from .training.model_card import DEFAULT_LICENSE, render_card
from .training.unit import build_translator

DATA_CARD_FILE = "data_card.md"  # where a local --data-card goes in the repo


def push_run(
    run: Path,
    repo_id: str,
    *,
    private: bool = False,
    include_partners: bool = False,
    revision: str | None = None,
    token: str | None = None,
    data_card: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> str:
    """Upload `run` to the Hub model repo `repo_id` (created if missing) in one commit; returns the repo's URL."""
    with tempfile.TemporaryDirectory(prefix="cycledeblur-push-") as staging:
        options = {"include_partners": include_partners, "data_card": data_card, "license": license}
        files = stage_run(run, Path(staging), repo_id, **options)
        api = HfApi(token=token)
        with hub_errors(f"pushing to the Hub repo {repo_id} failed"):
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            if revision not in (None, "main"):
                api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
            api.upload_folder(
                repo_id=repo_id,
                folder_path=staging,
                repo_type="model",
                revision=revision,
                commit_message=f"cycledeblur push of the run {run.resolve().name} ({len(files)} files)",
                # Partner folders or a data card left by an earlier push would no longer match the generator.
                delete_patterns=[f"{name}/*" for name in pushed_folders().values()] + [DATA_CARD_FILE],
            )
    return str(url)


def stage_run(
    run: Path,
    folder: Path,
    repo_id: str,
    *,
    include_partners: bool = False,
    data_card: str | None = None,
    license: str = DEFAULT_LICENSE,
) -> list[str]:
    """Write the repo `push_run` uploads into `folder` (new or empty); returns its files, relative to it."""
    check_repo_id(repo_id)
    config, steps = read_run(run)
    if folder.exists() and any(folder.iterdir()):
        raise UserError(f"{folder} is not empty: stage into a new or empty folder")
    # Everything is read and checked before anything is written: a mistake leaves nothing half-staged.
    partners = partner_networks(run, config) if include_partners else {}
    card_link, card_file = data_card_source(data_card)
    evaluation = read_evaluation(run / EVALUATION_FILE)
    generator_dir = run / "generator"
    generator = load_generator(generator_dir)  # what goes up must load
    folder.mkdir(parents=True, exist_ok=True)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        shutil.copyfile(generator_dir / name, folder / name)
    files = {name: f"the blurred -> sharp generator (`{generator.architecture}`)" for name in (CONFIG_NAME, WEIGHTS_NAME)}
    network_set = NETWORK_SETS[config.train.mode]
    for role, network in partners.items():
        subfolder, description = network_set.role(role).pushed_folder, network_set.role(role).description
        card_text = f"{description.capitalize()} of the cycledeblur model {repo_id}: see the README.md above this folder."
        network.save_pretrained(folder / subfolder, model_card_kwargs={"model_description": card_text})
        files[f"{subfolder}/"] = f"{description} (`{network.architecture}`)"
    if card_file:
        shutil.copyfile(card_file, folder / DATA_CARD_FILE)
        files[DATA_CARD_FILE] = "the training data's card"
    card = render_card(
        config,
        generator.architecture,
        steps,
        model_id=repo_id,
        license=license,
        evaluation=evaluation,
        data_card=card_link,
        files=files_section(files, repo_id, config, list(partners)),
    )
    card.save(folder / "README.md")
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def check_repo_id(repo_id: str, option: str = "--repo-id") -> None:
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise UserError(f"{option} {repo_id}: not a valid Hub repo id ({first_line(error)})") from None
    if repo_id.count("/") != 1:
        raise UserError(f"{option} {repo_id}: give the owner too, as USER/NAME or ORG/NAME")


def read_run(run: Path) -> tuple[Config, int]:
    """A finished run's config and steps trained, or a UserError saying why `run` is none."""
    if not (run / "config.yaml").is_file():
        raise UserError(f"--model {run}: not a run folder (no config.yaml)")
    resume = f"finish it with `cycledeblur train --config {run / 'config.yaml'} --resume`"
    missing = [name for name in (CONFIG_NAME, WEIGHTS_NAME) if not (run / "generator" / name).is_file()]
    if missing:
        raise UserError(f"--model {run}: an unfinished run (generator/ has no {' and no '.join(missing)}): {resume}")
    config = load_config(run / "config.yaml")
    checkpoints = list_checkpoints(run)
    # The last step always writes a checkpoint: a newer or older one means generator/ is from an earlier end.
    if checkpoints and checkpoint_step(checkpoints[-1]) != config.train.max_steps:
        raise UserError(
            f"--model {run}: an unfinished run (newest checkpoint {checkpoints[-1].name}, train.max_steps="
            f"{config.train.max_steps}; generator/ is from an earlier end): {resume}"
        )
    return config, config.train.max_steps


def checkpoint_step(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("step_"))


def partner_networks(run: Path, config: Config) -> dict[str, HubModel]:
    """The networks trained beside the deblurring generator, by role, with their weights from the newest checkpoint."""
    checkpoints = list_checkpoints(run)
    if not checkpoints:
        raise UserError(f"--include-discriminators: {run} has no checkpoint to take the other networks from")
    weights = network_weights(checkpoints[-1], config.train.mode)
    networks = {}
    for role in NETWORK_SETS[config.train.mode].partners:  # the deblurring generator comes from generator/
        network = build_partner(role.name, config)
        try:
            network.load_state_dict(weights[role.name])
        except RuntimeError as error:
            expected = f"{role.description} of {run / 'config.yaml'}"
            raise UserError(f"{checkpoints[-1]}: its {role.name} network is not {expected} ({first_line(error)})") from None
        networks[role.name] = network.eval()
    return networks


def build_partner(role: str, config: Config) -> HubModel:
    """A fresh network for `role`, built as the training loops build it."""
    channels = config.data.channels
    if role == "translator":
        return build_translator(config)
    if role == "reblur":
        spec = config.model.reblur_generator or config.model.generator
        return build_generator(spec.name, in_channels=channels, out_channels=channels, **spec.options)
    spec = config.model.discriminator
    # The paired discriminator is conditional: it sees the blurred photo and a candidate stacked along the channels.
    discriminator_channels = 2 * channels if config.train.mode == "paired" else channels
    return build_discriminator(spec.name, in_channels=discriminator_channels, **spec.options)


def data_card_source(data_card: str | None) -> tuple[str | None, Path | None]:
    """The model card's link to the training data's card, and the local file to upload as `DATA_CARD_FILE` (a URL
    is linked as given)."""
    if data_card is None:
        return None, None
    if data_card.startswith(("https://", "http://")):
        return f"<{data_card}>", None
    if not Path(data_card).is_file():
        raise UserError(f"--data-card {data_card}: neither a file nor an http(s) URL")
    return f"[{DATA_CARD_FILE}]({DATA_CARD_FILE})", Path(data_card)


def files_section(files: dict[str, str], repo_id: str, config: Config, partner_roles: list[str]) -> str:
    """The model card's table of the repo's files and, when it has partner networks, how to load them."""
    rows = "\n".join(f"| `{path}` | {what} |" for path, what in files.items())
    section = f"| file or folder | what |\n| --- | --- |\n| `README.md` | this card |\n{rows}"
    if not partner_roles:
        return section
    discriminator_class = DISCRIMINATORS.get(config.model.discriminator.name).__name__
    loaders = {"reblur": "load_generator", "translator": "UnitTranslator.from_pretrained"}
    loads = [
        f'{role} = {loaders.get(role, discriminator_class + ".from_pretrained")}(folder / "{pushed_folders()[role]}")'
        for role in partner_roles
    ]
    imports = sorted({discriminator_class, "load_generator"} | ({"UnitTranslator"} if "translator" in partner_roles else set()))
    return "\n".join(
        [
            section,
            "",
            "Each folder holds a `config.json` and a `model.safetensors`, as the top does. To fine-tune from all of them:",
            f"`cycledeblur train ... model.init_from={repo_id}`. To load them:",
            "",
            "```python",
            "from pathlib import Path",
            "from huggingface_hub import snapshot_download",
            f"from cycledeblur.models import {', '.join(imports)}",
            f'folder = Path(snapshot_download("{repo_id}"))',
            *loads,
            "```",
        ]
    )
