"""Domain data: real DICOM slices (pydicom and pydicom-data samples), multi-band 16-bit TIFF, the example folders."""

import io
import sys

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.pixels import apply_modality_lut, apply_voi_lut

from cycledeblur.cli import main
from cycledeblur.data import load_image_source
from cycledeblur.domain_examples import (
    convert_dicom_folder,
    dicom_sample,
    write_aerial_examples,
    write_medical_examples,
)
from cycledeblur.errors import ImageFileError, UserError
from cycledeblur.image_files import output_name, read_metadata, read_pixels, write_pixels
from cycledeblur.models.resnet import ResnetGenerator


def untrained_generator(folder, channels):
    """A tiny ResNet generator: untrained, its residual output makes it exactly the identity."""
    ResnetGenerator(in_channels=channels, out_channels=channels, base_channels=4, n_blocks=1).save_pretrained(folder)
    return folder


def dicom_bytes_with(path, **elements) -> bytes:
    """A real DICOM file with some elements changed, as bytes."""
    dataset = pydicom.dcmread(path)
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    buffer = io.BytesIO()
    dataset.save_as(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("sample", ["MR_small.dcm", "693_UNCR.dcm"])  # MR: window only; CT: rescale to HU, window
def test_grayscale_dicom_is_read_at_16_bits_through_rescale_and_window(sample):
    path = dicom_sample(sample)
    dataset = pydicom.dcmread(path)
    assert "WindowCenter" in dataset
    pixels = read_pixels(path)
    assert pixels.dtype == np.uint16 and pixels.shape == (dataset.Rows, dataset.Columns, 1)
    # pydicom's own rescale + window, in its output range: ours must be the same function of the pixel, up to the
    # linear map between the two ranges (and rounding to 16 bits, and the fit's own error).
    expected = apply_voi_lut(apply_modality_lut(dataset.pixel_array, dataset), dataset).ravel()
    slope, intercept = np.polyfit(expected, pixels.ravel().astype(np.float64), 1)
    assert np.abs(slope * expected + intercept - pixels.ravel()).max() <= 1
    assert pixels.max() == 65535  # the window clips the brightest tissue


def test_dicom_without_window_spans_its_full_range():
    path = dicom_sample("CT_small.dcm")
    dataset = pydicom.dcmread(path)
    assert "WindowCenter" not in dataset
    hounsfield = apply_modality_lut(dataset.pixel_array, dataset).astype(np.float64)
    expected = (hounsfield - hounsfield.min()) / (hounsfield.max() - hounsfield.min()) * 65535
    pixels = read_pixels(path)
    assert np.abs(pixels[:, :, 0] - expected).max() <= 0.51
    assert len(np.unique(pixels)) > 256  # finer than 8 bits


def test_monochrome1_is_inverted():
    path = dicom_sample("RG3_UNCR.dcm")  # computed radiography stored as MONOCHROME1: low values are bright
    shown = read_pixels(path).astype(np.int64)
    as_monochrome2 = read_pixels(dicom_bytes_with(path, PhotometricInterpretation="MONOCHROME2"), "cr.dcm")
    assert np.array_equal(shown, 65535 - as_monochrome2)


def test_color_ultrasound_dicom_keeps_its_8_bit_rgb():
    path = dicom_sample("US1_UNCR.dcm")
    assert np.array_equal(read_pixels(path), pydicom.dcmread(path).pixel_array)


@pytest.mark.parametrize(
    "sample, message",
    [
        ("MR_small_jpeg_ls_lossless.dcm", "JPEG-LS Lossless Image Compression"),  # no JPEG-LS decoder installed
        ("emri_small.dcm", "multi-frame DICOM (10 frames)"),
        ("rtplan.dcm", "without pixel data"),
    ],
)
def test_dicom_that_cannot_be_read_is_one_line_naming_the_file(sample, message):
    path = dicom_sample(sample)
    with pytest.raises(ImageFileError) as raised:
        read_pixels(path)
    assert str(path) in str(raised.value) and message in str(raised.value) and "\n" not in str(raised.value)


def test_dicom_without_pydicom_says_what_to_install(monkeypatch):
    path = dicom_sample("MR_small.dcm")
    monkeypatch.setitem(sys.modules, "pydicom", None)  # `import pydicom` now raises ImportError
    with pytest.raises(ImageFileError, match=r"MR_small\.dcm: .*pip install 'cycledeblur\[medical\]'"):
        read_pixels(path)


def test_dicom_outputs_are_named_png_and_dcm_is_never_written(tmp_path):
    assert output_name(tmp_path / "slice.DCM").name == "slice.png"
    assert output_name(tmp_path / "photo.jpg").name == "photo.jpg"
    with pytest.raises(ImageFileError, match=r"out\.dcm: .*name it \.png"):
        write_pixels(np.zeros((4, 4, 1), np.uint16), tmp_path / "out.dcm")


def test_deblur_writes_a_dicom_slice_as_16_bit_grayscale_png(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "mr.dcm").write_bytes(dicom_sample("MR_small.dcm").read_bytes())
    model = untrained_generator(tmp_path / "model", channels=1)
    assert main(["deblur", "--model", str(model), str(inputs), "--out", str(tmp_path / "out")]) == 0
    written = read_pixels(tmp_path / "out" / "mr.png")
    assert written.dtype == np.uint16 and written.shape == (64, 64, 1)
    assert np.abs(written.astype(np.int64) - read_pixels(inputs / "mr.dcm")).max() <= 2  # the identity network


def test_four_band_16_bit_tiff_keeps_its_bands_and_depth_through_deblur(tmp_path):
    rng = np.random.default_rng(0)
    bands = rng.integers(0, 65536, (32, 48, 4), dtype=np.uint16)  # e.g. blue, green, red, near infrared
    write_pixels(bands, tmp_path / "in" / "scene.tif")
    assert np.array_equal(read_pixels(tmp_path / "in" / "scene.tif"), bands)
    model = untrained_generator(tmp_path / "model", channels=4)
    assert main(["deblur", "--model", str(model), str(tmp_path / "in"), "--out", str(tmp_path / "out")]) == 0
    written = read_pixels(tmp_path / "out" / "scene.tif")
    assert written.dtype == np.uint16 and written.shape == bands.shape
    assert np.abs(written.astype(np.int64) - bands).max() <= 2  # the identity network: each band kept apart


# A UTM scene's georeferencing: 10 m pixels, its top-left corner's coordinates, the GeoKeys naming WGS 84 / UTM 33N.
GEOREFERENCE = (
    (33550, 12, 3, (10.0, 10.0, 0.0)),  # ModelPixelScale, DOUBLE
    (33922, 12, 6, (0.0, 0.0, 0.0, 500000.0, 4649776.0, 0.0)),  # ModelTiepoint, DOUBLE
    (34735, 3, 16, (1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 32633)),  # GeoKeyDirectory, SHORT
    (34737, 2, 23, "WGS 84 / UTM zone 33N|"),  # GeoAsciiParams, ASCII
)


def test_a_geotiff_scene_keeps_its_georeference_through_deblur(tmp_path):
    """Deblurred in tiles, a scene keeps the pixel grid, so its GeoTIFF tags are copied: GIS tools place it alike."""
    bands = np.random.default_rng(1).integers(0, 65536, (64, 96, 4), dtype=np.uint16)
    write_pixels(bands, tmp_path / "in" / "scene.tif", geotiff_tags=GEOREFERENCE)
    assert read_metadata(tmp_path / "in" / "scene.tif").geotiff_tags == GEOREFERENCE
    model = untrained_generator(tmp_path / "model", channels=4)
    arguments = [
        "deblur",
        "--model",
        str(model),
        str(tmp_path / "in"),
        "--out",
        str(tmp_path / "out"),
        "--tile",
        "48",
        "--tile-overlap",
        "16",
    ]
    assert main(arguments) == 0
    assert read_metadata(tmp_path / "out" / "scene.tif").geotiff_tags == GEOREFERENCE
    assert read_metadata(tmp_path / "in" / "scene.tif").geotiff_tags == GEOREFERENCE
    write_pixels(bands, tmp_path / "plain.tif")
    assert read_metadata(tmp_path / "plain.tif").geotiff_tags == ()


def test_medical_example_folder_holds_windowed_16_bit_slices(tmp_path):
    written = write_medical_examples(tmp_path, {"ct": "CT_small.dcm", "mr": "MR_small.dcm"})
    assert [path.name for path in written] == ["ct.png", "mr.png"]
    ct = read_pixels(tmp_path / "ct.png")
    assert np.array_equal(ct, read_pixels(dicom_sample("CT_small.dcm")))
    assert ct.dtype == np.uint16 and ct.shape == (128, 128, 1) and len(np.unique(ct)) > 256


def test_dicom_folders_are_converted_for_training_which_refuses_them(tmp_path):
    (tmp_path / "scans" / "a").mkdir(parents=True)
    (tmp_path / "scans" / "a" / "ct.dcm").write_bytes(dicom_sample("CT_small.dcm").read_bytes())
    with pytest.raises(UserError, match=r"holds DICOM files \(e\.g\. ct\.dcm\).*domain_examples dicom"):
        load_image_source(str(tmp_path / "scans"), key="data.blur")
    assert convert_dicom_folder(tmp_path / "scans", tmp_path / "png") == [tmp_path / "png" / "a" / "ct.png"]
    assert np.array_equal(read_pixels(tmp_path / "png" / "a" / "ct.png"), read_pixels(dicom_sample("CT_small.dcm")))


def test_aerial_example_folder_holds_16_bit_tiles_of_the_photo(tmp_path):
    import pywt.data

    written = write_aerial_examples(tmp_path, tile_size=256)
    assert sorted(path.name for path in written) == ["aero_0_0.tif", "aero_0_1.tif", "aero_1_0.tif", "aero_1_1.tif"]
    tile = read_pixels(tmp_path / "aero_1_0.tif")
    assert tile.dtype == np.uint16 and tile.shape == (256, 256, 1)
    assert np.array_equal(tile[:, :, 0], pywt.data.aero()[256:, :256].astype(np.uint16) * 257)


def test_domain_splits_command_writes_whole_bands_that_share_no_pixel(tmp_path, capsys):
    """`python -m cycledeblur.domain_examples splits` (make demo's scans): without pieces, val and test are whole bands."""
    import pywt.data

    from cycledeblur.domain_examples import main as examples_main

    assert examples_main(["splits", "aerial", str(tmp_path)]) == 0
    assert "wrote 2 train, 1 val, 1 test images of aerial" in capsys.readouterr().out
    expected = pywt.data.aero()

    def gray(split, name):
        return np.asarray(Image.open(tmp_path / split / f"{name}.png").convert("L"))

    assert (np.hstack([gray("train", "aero_0_0_left"), gray("train", "aero_0_0_right")]) == expected[:256]).all()
    assert (gray("val", "aero_0_0") == expected[256:384]).all()
    assert (gray("test", "aero_0_0") == expected[384:]).all()
