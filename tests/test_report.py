"""`cycledeblur report` on a real run: a self-contained page with every logged curve, the sample grids and the
kernels on a step slider, before/after pictures of the evaluated photos, the evaluation and the config; bounded in
size for a long run; rendered by a real headless Chromium, whose drag of the split changes the pixels shown."""

import json
import re
import shutil

import numpy as np
import pytest
from PIL import Image

from cycledeblur.cli import main
from cycledeblur.config import load_config
from cycledeblur.report import write_report
from cycledeblur.report.contents import MAX_GRIDS
from cycledeblur.training import train
from cycledeblur.training.tracking import read_metrics

from .conftest import ROOT, TINY_NETWORKS, TINY_TRAINING, reset_accelerate_state

CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def reported_run(unpaired, paired, tmp_path_factory):
    """A tiny cpu-fast run (its kernel reblur generator draws kernels) that writes its report when it ends, then
    evaluated on paired photos and reported again."""
    run = tmp_path_factory.mktemp("report") / "run"
    overrides = [*TINY_NETWORKS["cpu-fast.yaml"], *TINY_TRAINING, "train.max_steps=6", "train.sample_every=2", "train.report=true"]
    config = load_config(
        ROOT / "configs" / "cpu-fast.yaml",
        [f"data.blur={unpaired / 'blur'}", f"data.sharp={unpaired / 'sharp'}", f"output_dir={run}", *overrides],
    )
    train(config)
    reset_accelerate_state()
    assert (run / "report.html").is_file()  # written when training ended
    evaluation = ["evaluate", "--model", str(run), "--blur", str(paired / "blur"), "--sharp", str(paired / "sharp")]
    assert main([*evaluation, "--json", str(run / "evaluation.json")]) == 0
    assert main(["report", str(run)]) == 0
    return run


def test_the_report_holds_the_runs_curves_samples_kernels_evaluation_and_config_offline(reported_run, paired):
    page = (reported_run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)  # nothing fetched: no CDN, no network
    logged = {key.split("/", 1)[1] for row in read_metrics(reported_run) for key in row if key.startswith("loss/")}
    assert logged and all(f">{term}<" in page for term in logged)  # a panel titled by each loss term
    grids = json.loads(re.search(r"<script type='application/json' id='grid-data'>(.*?)</script>", page)[1])
    assert [grid["step"] for grid in grids] == [2, 4, 6] and all(grid["kernels"].startswith("data:image/png") for grid in grids)
    assert "The delivered generator on the images of evaluation.json" in page and page.count("class='compare'") == 4
    evaluation = json.loads((reported_run / "evaluation.json").read_text())
    assert f"{evaluation['input']['psnr']:.4g}" in page and f"{evaluation['output']['psnr']:.4g}" in page
    assert "reblur_generator:" in page and "kernel_size: 9" in page


def test_a_long_run_makes_a_page_of_bounded_size(reported_run, tmp_path):
    """200k steps logged every 100 and a grid every 1000: the page keeps at most MAX_GRIDS grids and binned curves."""
    run = tmp_path / "long"
    shutil.copytree(reported_run, run)
    last_row = read_metrics(reported_run)[-1]
    rng = np.random.default_rng(0)
    rows = (
        {**{k: float(v) * (1 + 0.1 * rng.standard_normal()) for k, v in last_row.items()}, "step": step}
        for step in range(100, 200_001, 100)
    )
    (run / "logs" / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    grid = run / "samples" / "step_0000006.png"
    for step in range(1000, 200_001, 1000):
        shutil.copyfile(grid, run / "samples" / f"step_{step:07d}.png")
    page = write_report(run).read_text()
    assert len(page) < 3_000_000, len(page)
    assert len(json.loads(re.search(r"id='grid-data'>(.*?)</script>", page)[1])) == MAX_GRIDS
    assert f"{MAX_GRIDS} of the 203 sample grids" in page


def test_report_errors_are_one_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    error = capsys.readouterr().err
    assert "not a run folder (no config.yaml)" in error and len(error.strip().splitlines()) == 1


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian package `chromium`; `make test` installs it as root)")
def test_chromium_renders_the_report_without_errors_and_the_split_follows_a_drag(reported_run, tmp_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on(
            "request", lambda request: errors.append(f"fetched {request.url}") if not request.url.startswith(("file:", "data:")) else None
        )
        page.goto((reported_run / "report.html").as_uri())
        screenshot = np.asarray(
            Image.open(page.screenshot(path=tmp_path / "page.png", full_page=True) and tmp_path / "page.png").convert("L")
        )
        assert screenshot.std() > 20  # not blank: curves, text and photos

        split = page.locator(".compare").first
        split.scroll_into_view_if_needed()
        split.screenshot(path=tmp_path / "before.png")
        box = split.bounding_box()
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2, steps=5)
        page.mouse.up()
        split.screenshot(path=tmp_path / "after.png")
        before, after = (np.asarray(Image.open(tmp_path / name).convert("RGB"), dtype=float) for name in ("before.png", "after.png"))
        changed = np.abs(before - after).max(axis=2) > 0
        columns = np.flatnonzero(changed.any(axis=0)) / changed.shape[1]
        assert changed.mean() > 0.05 and columns.min() >= 0.45 and columns.max() <= 0.95  # only between the two positions

        slider = page.locator("#grid-step")
        slider.fill("0")
        assert page.locator("#grid-label").inner_text() == "step 2"
        browser.close()
    assert errors == []


def test_a_run_still_training_is_reported_without_its_before_after(reported_run, tmp_path):
    run = tmp_path / "training"
    shutil.copytree(reported_run, run, ignore=shutil.ignore_patterns("generator", "report.html", "evaluation.json"))
    assert main(["report", str(run), "--out", str(tmp_path / "now.html")]) == 0
    page = (tmp_path / "now.html").read_text()
    assert "appear when training ends" in page and "class='compare'" not in page and "No evaluation.json" in page
    assert "step 6 of 6" in page and not (run / "report.html").exists()
