"""`cycledeblur app`: deblurring in the browser (Gradio), locally or as a Hugging Face Space.

Upload an image, get the deblurred one beside it (a before/after slider) and as a file to download at the input's
depth. The app deblurs files exactly as `cycledeblur deblur` does (`TiledDeblurrer.deblur_file`): 16-bit, grayscale,
TIFF and large images alike, the same pixels. A mistake (an unreadable file, a bad tile size) comes back as one
message in the page.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from .errors import ImageFileError, UserError
from .image_arrays import read_array
from .tiling import TiledDeblurrer

PREVIEW_SIZE = 1536  # px, the longer side of the slider's 8-bit pictures; the download is full size and depth


def preview(path: Path, channels: int) -> Image.Image:
    """An 8-bit picture of an image file for the slider, at most PREVIEW_SIZE px on its longer side."""
    array = read_array(path, channels)
    pixels = np.round(np.clip(array, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0)
    picture = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    picture.thumbnail((PREVIEW_SIZE, PREVIEW_SIZE))
    return picture


def deblurred_file(deblurrer: TiledDeblurrer, upload: str | None, tile: float | None, out_dir: Path) -> Path:
    """Deblur an uploaded file into `out_dir` (same name, "-deblurred" added, same format); `tile` 0 or empty: whole."""
    if not upload:
        raise UserError("upload an image first")
    source = Path(upload)
    if tile and (tile != int(tile) or tile < 1):
        raise UserError(f"tile size {tile}: a whole number of pixels (0: no tiling)")
    target = out_dir / f"{source.stem}-deblurred{source.suffix}"
    deblurrer.with_tile(int(tile) if tile else None).deblur_file(source, target)
    return target


def build_app(deblurrer: TiledDeblurrer, model_name: str):
    """The Gradio Blocks of the app around a loaded deblurrer."""
    import gradio as gr

    out_dir = Path(tempfile.mkdtemp(prefix="cycledeblur-app-"))

    def run(upload: str | None, tile: float | None):
        try:
            target = deblurred_file(deblurrer, upload, tile, Path(tempfile.mkdtemp(dir=out_dir)))
            return (preview(Path(upload), deblurrer.channels), preview(target, deblurrer.channels)), str(target)
        except (UserError, ImageFileError) as error:
            raise gr.Error(str(error), print_exception=False) from None

    with gr.Blocks(title=f"cycledeblur: {model_name}") as app:
        gr.Markdown(f"# cycledeblur\nDeblur a photo with `{model_name}`. PNG, JPEG, TIFF (16-bit too), WebP, BMP, DICOM.")
        with gr.Row():
            with gr.Column(scale=1):
                upload = gr.File(label="Blurred image", type="filepath")
                tile = gr.Number(label="Tile size (px; 0: the whole image at once)", value=deblurrer.tile or 0, precision=0)
                button = gr.Button("Deblur", variant="primary")
                download = gr.File(label="Deblurred image (full size and depth)")
            with gr.Column(scale=2):
                slider = gr.ImageSlider(label="Before / after", type="pil")
        button.click(run, inputs=[upload, tile], outputs=[slider, download], api_name="deblur")
    return app
