"""The report as one self-contained HTML page: styles, scripts and pictures inline, nothing fetched."""

from __future__ import annotations

import json
from html import escape

from .contents import ReportContents
from .curves import GROUP_TITLES

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1180px; padding: 0 16px 48px; color: #1b1b1b; }
h1 { font-size: 22px; margin: 20px 0 4px; } h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #ddd; }
.muted { color: #666; } svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; } td, th { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: right; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6f6; padding: 10px; overflow: auto; max-height: 420px; font-size: 12px; }
.slider-row { display: flex; gap: 12px; align-items: center; margin: 8px 0; } .slider-row input { flex: 1; }
.grid img { max-width: 100%; image-rendering: pixelated; } .kernels img { image-rendering: pixelated; margin-top: 6px; }
figure { display: inline-block; margin: 4px 8px 8px 0; vertical-align: top; }
.compare { position: relative; cursor: ew-resize; user-select: none; touch-action: none; }
.compare img { display: block; pointer-events: none; }
.compare .after { position: absolute; inset: 0; clip-path: inset(0 0 0 50%); }
.compare .handle { position: absolute; top: 0; bottom: 0; left: 50%; width: 2px; background: #fff; box-shadow: 0 0 3px #000; }
figcaption { font-size: 12px; color: #444; }
"""

SCRIPT = """
const grids = JSON.parse(document.getElementById('grid-data').textContent);
const slider = document.getElementById('grid-step');
if (slider) {
  const show = () => {
    const grid = grids[Number(slider.value)];
    document.getElementById('grid-image').src = grid.image;
    document.getElementById('grid-label').textContent = 'step ' + grid.step;
    const kernels = document.getElementById('kernel-image');
    if (kernels) { kernels.src = grid.kernels || ''; kernels.style.display = grid.kernels ? '' : 'none'; }
  };
  slider.addEventListener('input', show);
  show();
}
for (const box of document.querySelectorAll('.compare')) {
  const after = box.querySelector('.after'), handle = box.querySelector('.handle');
  const place = (clientX) => {
    const rect = box.getBoundingClientRect();
    const share = Math.min(1, Math.max(0, (clientX - rect.left) / rect.width));
    after.style.clipPath = `inset(0 0 0 ${share * 100}%)`;
    handle.style.left = `${share * 100}%`;
  };
  box.addEventListener('pointerdown', (event) => { box.setPointerCapture(event.pointerId); place(event.clientX); });
  box.addEventListener('pointermove', (event) => { if (box.hasPointerCapture(event.pointerId)) place(event.clientX); });
}
"""


def evaluation_table(evaluation: dict) -> str:
    metrics = list(evaluation["output"])
    header = "".join(f"<th>{escape(metric)}</th>" for metric in metrics)
    rows = [("mean, input", evaluation["input"]), ("mean, output", evaluation["output"])]
    rows += [(image["name"], image["output"]) for image in evaluation.get("per_image", [])[:50]]
    body = "".join(f"<tr><td>{escape(name)}</td>{''.join(f'<td>{values[m]:.4g}</td>' for m in metrics)}</tr>" for name, values in rows)
    shown = len(evaluation.get("per_image", []))
    note = f" (the first 50 of {shown} images)" if shown > 50 else ""
    return (
        f"<p class='muted'>{evaluation['kind']}, {evaluation['n_images']} images{note}: the means of input and output, "
        "then each image's output.</p>"
        f"<table><tr><th></th>{header}</tr>{body}</table>"
    )


def render(contents: ReportContents) -> str:
    run = escape(contents.run.name)
    progress = f"step {contents.last_step}" + (f" of {contents.max_steps}" if contents.max_steps else "")
    sections = [f"<h1>{run}</h1><p class='muted'>train.mode {escape(contents.mode)}, {progress} · {escape(str(contents.run))}</p>"]

    sections.append("<h2>Training curves</h2>")
    if not contents.curves:
        sections.append("<p class='muted'>No metrics logged yet (logs/metrics.jsonl).</p>")
    for group, svg in contents.curves.items():
        sections.append(f"<h3>{escape(GROUP_TITLES.get(group, group))}</h3>{svg}")

    sections.append("<h2>Samples</h2>")
    if contents.grids:
        kernels = "<div class='kernels'><img id='kernel-image' alt='kernels'></div>" if any(g.kernels for g in contents.grids) else ""
        sections.append(
            f"<p class='muted'>{len(contents.grids)} of the {contents.n_sample_steps} sample grids in samples/; each grid's rows "
            "are the blurred inputs, the deblurred outputs, then the way back.</p>"
            f"<div class='slider-row'><input type='range' id='grid-step' min='0' max='{len(contents.grids) - 1}' "
            f"value='{len(contents.grids) - 1}' aria-label='sample step'><span id='grid-label'></span></div>"
            f"<div class='grid'><img id='grid-image' alt='sample grid'></div>{kernels}"
        )
    else:
        sections.append("<p class='muted'>No sample grid yet (train.sample_every).</p>")

    sections.append("<h2>Before / after</h2>")
    sections.append(f"<p class='muted'>{escape(contents.comparisons_note)} Drag across a picture: left of the line is the input.</p>")
    for picture in contents.comparisons:
        sections.append(
            f"<figure><div class='compare'><img src='{picture.before}' alt='before'><img class='after' src='{picture.after}' "
            f"alt='after'><div class='handle'></div></div><figcaption>{escape(picture.name)}</figcaption></figure>"
        )

    sections.append("<h2>Evaluation</h2>")
    if contents.evaluation:
        sections.append(evaluation_table(contents.evaluation))
    else:
        sections.append(
            "<p class='muted'>No evaluation.json: <code>cycledeblur evaluate --model RUN --blur B --sharp S "
            "--json RUN/evaluation.json</code></p>"
        )

    sections.append(f"<h2>Config</h2><pre>{escape(contents.config_text)}</pre>")
    grid_data = json.dumps([{"step": g.step, "image": g.image, "kernels": g.kernels} for g in contents.grids]).replace("</", "<\\/")
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta name='viewport' content='width=device-width, initial-scale=1'><title>{run}: cycledeblur report</title>"
        f"<style>{STYLE}</style></head><body>{''.join(sections)}"
        f"<script type='application/json' id='grid-data'>{grid_data}</script><script>{SCRIPT}</script></body></html>"
    )
