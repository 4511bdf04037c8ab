"""The demo's before/after figure: one row per photo, blurred | deblurred | sharp, each panel scaled alike."""

import numpy as np
from PIL import Image

from cycledeblur.demo import before_after


def test_before_after_puts_the_three_versions_side_by_side(paired, tmp_path):
    deblurred = tmp_path / "deblurred"
    deblurred.mkdir()
    names = sorted(path.name for path in (paired / "blur").iterdir())
    for name in names:  # a stand-in result: the photo flipped, so that each panel is told apart
        Image.open(paired / "blur" / name).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(deblurred / name)
    out = tmp_path / "figure" / "before-after.png"

    before_after(paired / "blur", deblurred, paired / "sharp", out, height=48)

    sheet = np.asarray(Image.open(out).convert("RGB")).astype(float)
    assert sheet.shape[0] == len(names) * (48 + 4)
    first_row = sheet[:48]
    blurred, flipped, sharp = first_row[:, :48], first_row[:, 52:100], first_row[:, 104:152]
    assert np.abs(flipped - blurred[:, ::-1]).mean() < 3  # resizing commutes with the flip up to rounding
    assert np.abs(sharp - blurred).mean() > 1  # the sharp photo, not the blurred one again
