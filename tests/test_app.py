"""`cycledeblur app` served on localhost and called through gradio_client, on real photos (color, 16-bit gray,
tiled): the same pixels as `cycledeblur deblur`; a bad upload is one message. `push --space` staged file by file."""

import socket

import numpy as np
import pytest
import yaml
from PIL import Image

from cycledeblur.cli import main
from cycledeblur.image_arrays import read_image_array
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.models import build_generator

from .conftest import photo, randomised

gradio = pytest.importorskip("gradio", reason="the app needs the [app] extra")


@pytest.fixture(scope="module")
def generator_folder(tmp_path_factory):
    """A small light generator with random weights: the pixels it produces are the app's and deblur's alike."""
    folder = tmp_path_factory.mktemp("app") / "generator"
    randomised(build_generator("light", base_channels=8, n_blocks=1)).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def uploads(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uploads")
    Image.fromarray(photo("coffee", 160)[:, :150]).save(folder / "coffee.png")
    Image.fromarray(photo("camera", 120).astype(np.uint16) * 257).save(folder / "camera16.png")  # 16-bit gray
    (folder / "notes.png").write_text("not an image")
    return folder


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_the_app_deblurs_uploads_as_deblur_does_and_says_what_is_wrong_in_one_line(generator_folder, uploads, tmp_path):
    from gradio_client import Client, handle_file

    from cycledeblur.app import build_app

    port = free_port()
    app = build_app(Deblurrer(resolve_generator(generator_folder)), "tiny")
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        for name, tile in (("coffee.png", 0), ("camera16.png", 0), ("coffee.png", 64)):
            (before, after), download = client.predict(handle_file(uploads / name), tile, api_name="/deblur")
            out = tmp_path / f"deblur-{tile}"
            assert (
                main(["deblur", "--model", str(generator_folder), str(uploads / name), "--out", str(out), "--tile", str(tile or 100_000)])
                == 0
            )
            expected, expected_format = read_image_array(out / name, 3 if name == "coffee.png" else 1)
            served, served_format = read_image_array(download, expected.shape[0])
            assert served_format.bit_depth == expected_format.bit_depth == (16 if name == "camera16.png" else 8)
            assert np.array_equal(served, expected)
            assert Image.open(before).size == Image.open(after).size == Image.open(uploads / name).size
        bad_uploads = (
            (uploads / "notes.png", 0, "not an image file"),
            (uploads / "coffee.png", -5, "a whole number of pixels"),
            (uploads / "coffee.png", 8, "smaller than --tile 8"),  # the tiles' overlap is 32 px
        )
        for upload, tile, message in bad_uploads:
            with pytest.raises(Exception) as error:
                client.predict(handle_file(upload), tile, api_name="/deblur")
            assert message in str(error.value) and "Traceback" not in str(error.value)
    finally:
        app.close()


def test_push_space_stages_the_app_the_package_and_the_model(generator_folder, tmp_path, capsys):
    staged = tmp_path / "space"
    assert main(["push", "--model", str(generator_folder), "--space", "me/deblur", "--dry-run", str(staged)]) == 0
    assert "staged" in capsys.readouterr().out
    front_matter = yaml.safe_load((staged / "README.md").read_text().split("---")[1])
    assert front_matter["sdk"] == "gradio" and front_matter["sdk_version"] == gradio.__version__
    assert front_matter["app_file"] == "app.py" and (staged / "app.py").is_file()
    assert "MODEL = 'model'" in (staged / "app.py").read_text()
    for name in ("config.json", "model.safetensors"):
        assert (staged / "model" / name).read_bytes() == (generator_folder / name).read_bytes()
    assert (staged / "cycledeblur" / "app.py").is_file() and not list(staged.rglob("__pycache__"))
    requirements = (staged / "requirements.txt").read_text().splitlines()
    assert any(line.startswith("gradio") for line in requirements) and any(line.startswith("torch>=") for line in requirements)
    compile((staged / "app.py").read_text(), "app.py", "exec")
    assert resolve_generator(staged / "model").architecture == "light"

    hub = tmp_path / "hub"
    assert main(["push", "--model", "someone/deblur-model", "--space", "me/deblur", "--dry-run", str(hub)]) == 0
    assert yaml.safe_load((hub / "README.md").read_text().split("---")[1])["models"] == ["someone/deblur-model"]
    assert "MODEL = 'someone/deblur-model'" in (hub / "app.py").read_text() and not (hub / "model").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--space", "no-owner"], "--space no-owner: give the owner too"),
        (["--space", "me/x", "--include-discriminators"], "--include-discriminators is for a model repo"),
        (["--space", "me/x", "--repo-id", "me/y"], "not allowed with argument"),
        (["--space", "me/x", "--model", "not a repo id!"], "--model not a repo id!: not a valid Hub repo id"),
    ],
)
def test_push_space_errors_are_one_line(generator_folder, tmp_path, capsys, args, message):
    model = [] if "--model" in args else ["--model", str(generator_folder)]
    try:
        code = main(["push", *model, *args, "--dry-run", str(tmp_path / "s")])
    except SystemExit as parser_exit:  # argparse's own errors
        code = parser_exit.code
    assert code == 2
    error = capsys.readouterr().err
    lines = error.strip().splitlines()
    assert message in lines[-1] and (len(lines) == 1 or lines[0].startswith("usage:")), error  # argparse shows its usage
    assert not (tmp_path / "s").exists()
