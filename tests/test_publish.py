"""`cycledeblur push` on real tiny runs, up to the network: the Hub cannot be reached from the test machine, so
huggingface_hub's HfApi calls are replaced by recorders that keep what was staged for upload."""

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from safetensors.torch import load_file, save_file

from cycledeblur import __version__
from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.models import DISCRIMINATORS, load_generator
from cycledeblur.training import train
from cycledeblur.training.checkpoints import list_checkpoints

from .conftest import ROOT, TINY_NETWORKS, TINY_TRAINING, reset_accelerate_state

SECRET = "hf_" + "n0tAr3alT0ken" * 3
REPO = "someone/tiny-deblur"
NETWORK_FILES = ["README.md", "config.json", "model.safetensors"]


def train_tiny(run: Path, data: Path, base: str, *overrides: str) -> Path:
    config = load_config(
        ROOT / "configs" / base,
        [
            f"data.blur={data / 'blur'}",
            f"data.sharp={data / 'sharp'}",
            f"output_dir={run}",
            *TINY_NETWORKS[base],
            *TINY_TRAINING,
            "train.max_steps=2",
            "train.checkpoint_every=2",
            *overrides,
        ],
    )
    train(config)
    reset_accelerate_state()
    return run


@pytest.fixture(scope="module")
def evaluated_run(unpaired, paired, tmp_path_factory) -> Path:
    """A finished unpaired run, scored by `cycledeblur evaluate` into RUN/evaluation.json (the push convention)."""
    run = train_tiny(tmp_path_factory.mktemp("evaluated") / "run", unpaired, "default.yaml")
    evaluate = ["evaluate", "--model", str(run), "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp")]
    assert main([*evaluate, "--json", str(run / "evaluation.json")]) == 0
    return run


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """HfApi's calls recorded (with the token the HfApi holds); upload_folder keeps a copy of the staged folder."""
    calls = []
    uploaded = tmp_path / "uploaded"

    def record(name):
        def call(self, *args, **kwargs):
            calls.append(SimpleNamespace(name=name, token=self.token, args=args, kwargs=kwargs))
            if name == "upload_folder":
                shutil.copytree(kwargs["folder_path"], uploaded)
            return f"https://huggingface.co/{args[0] if args else kwargs['repo_id']}"

        return call

    for name in ("create_repo", "create_branch", "upload_folder"):
        monkeypatch.setattr(HfApi, name, record(name))
    return SimpleNamespace(calls=calls, uploaded=uploaded)


def relative_files(folder: Path) -> list[str]:
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def same_weights(network: torch.nn.Module, path: Path) -> bool:
    saved, loaded = load_file(path), network.state_dict()
    return saved.keys() == loaded.keys() and all(torch.equal(saved[key], loaded[key]) for key in saved)


def test_push_uploads_the_generator_its_partners_and_a_model_card(evaluated_run, hub, capsys):
    run = evaluated_run
    command = [
        "push",
        "--model",
        str(run),
        "--repo-id",
        REPO,
        "--include-discriminators",
        "--private",
        "--revision",
        "dev",
        "--token",
        SECRET,
        "--data-card",
        str(ROOT / "data_cards" / "demo.md"),
    ]
    assert main(command) == 0

    create_repo, create_branch, upload = hub.calls
    assert (create_repo.name, create_repo.args, create_repo.kwargs) == (
        "create_repo",
        (REPO,),
        {"private": True, "exist_ok": True, "repo_type": "model"},
    )
    assert (create_branch.name, create_branch.args, create_branch.kwargs) == (
        "create_branch",
        (REPO,),
        {"branch": "dev", "exist_ok": True, "repo_type": "model"},
    )
    assert upload.name == "upload_folder" and upload.kwargs["repo_id"] == REPO and upload.kwargs["revision"] == "dev"
    assert {call.token for call in hub.calls} == {SECRET}  # the token reaches HfApi, and (below) nothing else
    assert not Path(upload.kwargs["folder_path"]).exists()  # the staging folder is gone
    partners = ["reblur_generator", "discriminator_sharp", "discriminator_blurred"]
    assert relative_files(hub.uploaded) == sorted(
        ["README.md", "config.json", "model.safetensors", "data_card.md"]
        + [f"{folder}/{name}" for folder in partners for name in NETWORK_FILES]
    )
    assert set(upload.kwargs["delete_patterns"]) >= {f"{folder}/*" for folder in partners}

    # What went up loads: the delivered generator at the top, the others from the newest checkpoint.
    checkpoint = list_checkpoints(run)[-1]
    assert same_weights(load_generator(hub.uploaded), run / "generator" / "model.safetensors")
    assert same_weights(load_generator(hub.uploaded / "reblur_generator"), checkpoint / "model_1.safetensors")
    for folder, weights in (("discriminator_sharp", "model_2"), ("discriminator_blurred", "model_3")):
        architecture = json.loads((hub.uploaded / folder / "config.json").read_text())["architecture"]
        discriminator = DISCRIMINATORS.get(architecture).from_pretrained(hub.uploaded / folder)
        assert same_weights(discriminator, checkpoint / f"{weights}.safetensors")

    card = (hub.uploaded / "README.md").read_text()
    report = json.loads((run / "evaluation.json").read_text())
    psnr, ssim = (report["output"][metric] for metric in ("psnr", "ssim"))
    assert f"| model output | {psnr:.2f} | {ssim:.4f} |" in card
    assert f"| blurred input | {report['input']['psnr']:.2f} | {report['input']['ssim']:.4f} |" in card
    assert f"on {report['n_images']} paired images" in card
    assert "library_name: cycledeblur" in card and "license: apache-2.0" in card and "- image-deblurring" in card
    assert "Training steps: 2" in card and "max_steps: 2" in card
    assert f"cycledeblur deblur --model {REPO}" in card and f'load_generator("{REPO}")' in card
    # The card names what exists: the package and its version, and the repo it was pushed to.
    assert f"`cycledeblur` {__version__}, published as\n[{REPO}](https://huggingface.co/{REPO})" in card
    assert "[data_card.md](data_card.md)" in card and "## Licence" in card
    assert (hub.uploaded / "data_card.md").read_bytes() == (ROOT / "data_cards" / "demo.md").read_bytes()

    output = capsys.readouterr()
    assert SECRET not in output.out + output.err + upload.kwargs["commit_message"]
    assert not [path for path in hub.uploaded.rglob("*") if path.is_file() and SECRET.encode() in path.read_bytes()]


def test_dry_run_stages_the_generator_alone_and_contacts_nothing(evaluated_run, tmp_path, monkeypatch):
    monkeypatch.setattr(HfApi, "create_repo", lambda *args, **kwargs: pytest.fail("the dry run contacted the Hub"))
    out = tmp_path / "staged"
    assert main(["push", "--model", str(evaluated_run), "--repo-id", REPO, "--dry-run", str(out), "--license", "mit"]) == 0
    assert relative_files(out) == NETWORK_FILES
    card = (out / "README.md").read_text()
    assert "license: mit" in card and "## Evaluation" in card and "snapshot_download" not in card
    assert same_weights(load_generator(out), evaluated_run / "generator" / "model.safetensors")


def test_a_paired_run_pushes_its_conditional_discriminator_from_a_wrapped_checkpoint(paired, tmp_path):
    run = train_tiny(tmp_path / "run", paired, "paired.yaml")
    checkpoint = list_checkpoints(run)[-1]
    # A 2-process or compiled run saves the discriminator's keys under DDP's and torch.compile's wrappers.
    discriminator_weights = load_file(checkpoint / "model_1.safetensors")
    save_file({f"module._orig_mod.{key}": value for key, value in discriminator_weights.items()}, checkpoint / "model_1.safetensors")
    out = tmp_path / "staged"
    assert main(["push", "--model", str(run), "--repo-id", REPO, "--include-discriminators", "--dry-run", str(out)]) == 0
    assert relative_files(out) == sorted(NETWORK_FILES + [f"discriminator/{name}" for name in NETWORK_FILES])
    discriminator = DISCRIMINATORS.get("patchgan").from_pretrained(out / "discriminator")
    assert discriminator.state_dict().keys() == discriminator_weights.keys()
    assert all(torch.equal(discriminator.state_dict()[key], value) for key, value in discriminator_weights.items())
    card = (out / "README.md").read_text()
    assert "pix2pix" in card and "## Evaluation" not in card
    assert 'discriminator = PatchDiscriminator.from_pretrained(folder / "discriminator")' in card


def unfinished(run: Path) -> None:
    shutil.rmtree(run / "generator")


def without_checkpoints(run: Path) -> None:
    shutil.rmtree(run / "checkpoints")


def resumed_and_stopped(run: Path) -> None:
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("max_steps: 2", "max_steps: 4"))


def broken_evaluation(run: Path) -> None:
    (run / "evaluation.json").write_text('{"kind": "paired"}')


@pytest.mark.parametrize(
    "spoil, arguments, message",
    [
        (unfinished, [], "an unfinished run (generator/ has no config.json"),
        (resumed_and_stopped, [], "an unfinished run (newest checkpoint step_0000002, train.max_steps=4"),
        (without_checkpoints, ["--include-discriminators"], "has no checkpoint to take the other networks from"),
        (broken_evaluation, [], "is not a report of `cycledeblur evaluate --json`: 'input'"),
        (None, ["--repo-id", "someone/bad--name"], "--repo-id someone/bad--name: not a valid Hub repo id"),
        (None, ["--repo-id", "tiny-deblur"], "give the owner too, as USER/NAME"),
        (None, ["--data-card", "no/such/card.md"], "--data-card no/such/card.md: neither a file nor an http(s) URL"),
    ],
)
def test_what_a_user_can_get_wrong_ends_in_one_line(evaluated_run, tmp_path, capsys, spoil, arguments, message):
    run = shutil.copytree(evaluated_run, tmp_path / "run")
    if spoil:
        spoil(run)
    arguments = ["--repo-id", REPO, *arguments] if "--repo-id" not in arguments else arguments
    staged = tmp_path / "staged"
    assert main(["push", "--model", str(run), "--token", SECRET, *arguments, "--dry-run", str(staged)]) == 2
    error = capsys.readouterr().err
    assert message in error and len(error.strip().splitlines()) == 1 and SECRET not in error
    assert not staged.exists()  # checked before anything is written


def refuse(self, repo_id, **kwargs):
    raise HfHubHTTPError("403 Forbidden: you cannot write to this namespace", response=SimpleNamespace(headers={}, request=None))


@pytest.mark.parametrize(
    "create_repo, message",
    [
        (refuse, "403 Forbidden: you cannot write to this namespace"),
        # huggingface_hub's own: HF_HUB_OFFLINE=1 (conftest) refuses to connect.
        (HfApi.create_repo, "Cannot reach https://huggingface.co/api/repos/create: offline mode is enabled"),
    ],
)
def test_a_hub_error_ends_in_one_line(evaluated_run, monkeypatch, capsys, create_repo, message):
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    assert main(["push", "--model", str(evaluated_run), "--repo-id", REPO, "--token", SECRET]) == 2
    error = capsys.readouterr().err
    assert f"pushing to the Hub repo {REPO} failed: {message}" in error
    assert len(error.strip().splitlines()) == 1 and SECRET not in error


def test_a_dry_run_into_a_folder_with_files_stops(evaluated_run, tmp_path, capsys):
    (tmp_path / "staged").mkdir()
    (tmp_path / "staged" / "keep.txt").write_text("mine")
    assert main(["push", "--model", str(evaluated_run), "--repo-id", REPO, "--dry-run", str(tmp_path / "staged")]) == 2
    assert "is not empty" in capsys.readouterr().err and relative_files(tmp_path / "staged") == ["keep.txt"]
