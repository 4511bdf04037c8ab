"""The `cycledeblur` command line: train, synth, deblur, evaluate, export, models, push.

Exit codes: 0 success, 2 a user error (bad path, config or input; one line on stderr), 3 `deblur` / `evaluate`
could not process some input files (one line each on stderr) but processed the others, 130 / 143 a training run
stopped by SIGINT / SIGTERM after writing a checkpoint, 1 anything else.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from .errors import ImageFileError, TrainingInterrupted, UserError
from .pretrained import DEFAULT_MODEL

err_console = Console(stderr=True)
EXIT_INPUTS_FAILED = 3
MODEL_HELP = (
    "run folder, generator folder{what}, or the name of a bundled model (cycledeblur models lists them);"
    f" default: {DEFAULT_MODEL}, bundled with cycledeblur (an existing local path named {DEFAULT_MODEL} wins)"
)
# Errors of the storage, not of the program: a full disk or quota, a read-only or forbidden folder.
STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES}


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        exit_code = args.run(args)
    except UserError as error:
        print_error(error)
        return 2
    except TrainingInterrupted as stopped:
        err_console.print(str(stopped), highlight=False, soft_wrap=True)
        return 128 + stopped.signal_number
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    except OSError as error:
        if error.errno not in STORAGE_ERRORS:
            raise
        # Samples, logs, the delivered generator...: checkpoints say so themselves, and keep the earlier ones.
        print_error(f"cannot write {error.filename or 'a file'}: {error.strerror}")
        return 2
    return exit_code


def print_error(message: str | Exception) -> None:
    """One line on stderr; `message` (which may hold brackets, like a file name or "[Errno 13]") is not markup."""
    text = own_message(message) if isinstance(message, Exception) else message
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def own_message(error: Exception) -> str:
    """`error`'s message. Raised in a DataLoader worker (a training image with `data.strict`, say), it reaches this
    process as the same type, but torch puts the worker's whole traceback in its message: keep the original line."""
    lines = str(error).strip().splitlines()
    raised_as = f"{type(error).__module__}.{type(error).__qualname__}: "
    if lines and lines[0].startswith(f"Caught {type(error).__name__} in DataLoader worker") and lines[-1].startswith(raised_as):
        return lines[-1].removeprefix(raised_as)
    return str(error)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cycledeblur", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train a deblurring generator: unpaired CycleGAN, pix2pix (train.mode=paired) or UNIT (train.mode=unit)"
    )
    add_train_arguments(train)
    train.set_defaults(run=run_train)

    synth = commands.add_parser("synth", help="make blurred images from sharp ones")
    synth.add_argument("--sharp", required=True, type=Path, help="folder of sharp images")
    synth.add_argument("--out", required=True, type=Path, help="output folder (gets blur/ and sharp/)")
    synth.add_argument("--kind", default="mixed", choices=["motion", "gaussian", "defocus", "mixed"])
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--paired", action="store_true", help="blur every image, keep names (evaluation sets)")
    synth.add_argument("--noise", type=float, default=0.0, help="Gaussian noise sigma, in units of the [0, 1] range")
    synth.add_argument("--jpeg", type=int, default=None, metavar="QUALITY", help="JPEG round trip at this quality")
    synth.add_argument("--save-kernels", action="store_true", help="also write each blur kernel as a PNG")
    synth.set_defaults(run=run_synth)

    deblur = commands.add_parser("deblur", help="deblur image files or folders with a trained generator")
    deblur.add_argument("inputs", nargs="+", type=Path, help="image files or folders")
    deblur.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP.format(what=", Hub model id or .onnx file"))
    deblur.add_argument("--out", required=True, type=Path, help="output folder")
    deblur.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: keep them)")
    add_inference_arguments(deblur)
    deblur.set_defaults(run=run_deblur)

    evaluate = commands.add_parser("evaluate", help="PSNR/SSIM on paired images, or a no-reference sharpness report without --sharp")
    evaluate.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP.format(what=", Hub model id or .onnx file"))
    evaluate.add_argument("--blur", required=True, type=Path, help="folder of blurred images")
    evaluate.add_argument("--sharp", type=Path, help="folder of sharp images with the same names (optional)")
    evaluate.add_argument("--json", type=Path, help="write the mean and per-image scores to this JSON file")
    evaluate.add_argument("--csv", type=Path, help="write the per-image scores to this CSV file")
    add_inference_arguments(evaluate)
    evaluate.set_defaults(run=run_evaluate)

    export = commands.add_parser("export", help="export a generator to ONNX (fp32, fp16 or int8), checked against PyTorch on real images")
    export.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP.format(what=" or Hub model id"))
    export.add_argument("--onnx", required=True, type=Path, metavar="OUT.onnx", help="the ONNX file to write")
    export.add_argument("--opset", type=int, default=None, metavar="N", help="ONNX opset (default: 18)")
    export.add_argument(
        "--dynamic",
        action="store_true",
        help="any batch size and image size (multiples of the stride); default: one image of --input-size",
    )
    export.add_argument(
        "--input-size", type=int, default=None, metavar="N", help="without --dynamic: the input's height and width (default 512)"
    )
    export.add_argument("--fp16", action="store_true", help="float16 weights and arithmetic (inputs and outputs stay float32)")
    export.add_argument("--int8", action="store_true", help="also write OUT.int8.onnx, statically quantized")
    export.add_argument(
        "--calibration",
        type=Path,
        metavar="DIR",
        help="for --int8: blurred images, or blur/ and sharp/ with the same names; the last quarter is held out and scored",
    )
    export.add_argument(
        "--calibration-percentile",
        type=float,
        default=None,
        metavar="P",
        help="for --int8: each activation's range covers this percentile of its calibration values (default 99.9)",
    )
    export.add_argument(
        "--check-images",
        type=Path,
        metavar="DIR",
        help="real images to compare ONNX and PyTorch on (default: --calibration's blurred images, else the run's own "
        "blurred photos, else the package's sample photos)",
    )
    export.set_defaults(run=run_export)

    app = commands.add_parser("app", help="deblur in the browser: a Gradio app with a before/after slider (pip install 'cycledeblur[app]')")
    app.add_argument("--model", default=DEFAULT_MODEL, help=MODEL_HELP.format(what=", Hub model id or .onnx file"))
    app.add_argument("--host", default="127.0.0.1", help="address to serve on (0.0.0.0: every interface)")
    app.add_argument("--port", type=int, default=7860)
    add_inference_arguments(app)
    app.set_defaults(run=run_app)

    report = commands.add_parser("report", help="write a run's HTML report: curves, samples, before/after, evaluation, config")
    report.add_argument("run_dir", type=Path, metavar="RUN", help="run folder (training or finished)")
    report.add_argument("--out", type=Path, help="the page to write (default: RUN/report.html)")
    report.set_defaults(run=run_report)

    models = commands.add_parser("models", help=f"list the models bundled with cycledeblur, usable by name (--model {DEFAULT_MODEL})")
    models.set_defaults(run=run_models)

    push = commands.add_parser(
        "push", help="upload a finished run's generator, with a model card, to the Hugging Face Hub; or the app, as a Space"
    )
    push.add_argument(
        "--model",
        required=True,
        type=Path,
        help="run folder (config.yaml, generator/, checkpoints/); with --space also a generator folder, a bundled model or a Hub model id",
    )
    destination = push.add_mutually_exclusive_group(required=True)
    destination.add_argument("--repo-id", help="Hub model repo, USER/NAME or ORG/NAME (created if missing)")
    destination.add_argument(
        "--space", metavar="USER/NAME", help="Hub Space to create or update with the app (cycledeblur app) around --model"
    )
    push.add_argument("--private", action="store_true", help="create the repo private (an existing one keeps its visibility)")
    push.add_argument(
        "--include-discriminators",
        action="store_true",
        help="also the reblurring generator and the discriminators, from the run's newest checkpoint",
    )
    push.add_argument("--revision", help="branch to commit to, created from main if missing (default: main)")
    push.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login); never written anywhere")
    push.add_argument("--data-card", help="the training data's card: a Markdown file (uploaded as data_card.md) or a URL")
    push.add_argument("--license", help="the weights' licence, as a Hub licence id (default: apache-2.0)")
    push.add_argument(
        "--dry-run",
        type=Path,
        metavar="OUT_DIR",
        help="write the folder that would be uploaded to OUT_DIR (new or empty) and contact nothing",
    )
    push.set_defaults(run=run_push)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (defaults: configs/default.yaml settings)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="PATH",
        help="continue from the newest checkpoint of output_dir, or from PATH (a checkpoint or run folder)",
    )
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=100")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument(
        "--precision",
        choices=["fp32", "bf16", "fp16", "auto"],
        help="autocast precision (default fp32); auto: bf16 where the CPU or GPU computes in it, fp16 on an older GPU, "
        "else fp32; an ONNX model's is set at export",
    )
    parser.add_argument("--tile", type=int, default=None, help="process images larger than this as tiles (pixels)")
    parser.add_argument(
        "--tile-overlap",
        type=int,
        default=None,
        help="overlap of neighbouring tiles in pixels (default 32, at most a quarter of a fixed-size ONNX input)",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass")


def build_deblurrer(args: argparse.Namespace):
    """A PyTorch `Deblurrer`, or an `OnnxDeblurrer` for a .onnx file (then PyTorch is not even imported)."""
    from .export.runtime import OnnxDeblurrer, is_onnx_model

    options = {"tile": args.tile, "tile_overlap": args.tile_overlap, "batch_size": args.batch_size}
    options["precision"] = args.precision
    if is_onnx_model(args.model):
        return OnnxDeblurrer(args.model, device=args.device, **options)
    from .inference import Deblurrer, resolve_generator

    return Deblurrer(resolve_generator(args.model), device=args.device, **options)


def run_train(args: argparse.Namespace) -> int:
    from accelerate import PartialState

    from .config import load_config
    from .training import train

    overrides = list(args.overrides)
    # `--resume key=value` is `--resume` followed by an override, not a checkpoint path.
    if isinstance(args.resume, str) and "=" in args.resume:
        overrides.insert(0, args.resume)
        args.resume = True
    config = load_config(args.config, overrides)
    generator_dir = train(config, resume=args.resume)
    if PartialState().is_main_process:
        Console().print(f"generator saved to [bold]{generator_dir}[/]")
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from .synth import synthesize_folder

    summary = synthesize_folder(
        args.sharp,
        args.out,
        kind=args.kind,
        seed=args.seed,
        paired=args.paired,
        noise_sigma=args.noise,
        jpeg_quality=args.jpeg,
        save_kernels=args.save_kernels,
    )
    Console().print(summary)
    return 0


def run_deblur(args: argparse.Namespace) -> int:
    """Deblur every input into --out; a file that cannot be read or written is reported, and the others go on."""
    from rich.progress import track

    jobs = deblur_jobs(args.inputs, args.out)
    deblurrer = build_deblurrer(args)
    out = args.out.resolve()
    failed = existing = 0
    for source, target in track(jobs, description="deblurring", transient=True, console=err_console):
        try:
            # An output name comes from its input's, but a symbolic link under --out could still lead elsewhere.
            if not target.resolve().is_relative_to(out):
                raise ImageFileError(f"{target} would be written outside --out {args.out} (through a symbolic link)")
            if not args.overwrite and (target.exists() or target.is_symlink()):
                message = f"{target} exists (--overwrite replaces it)"
                err_console.print(f"[yellow]skipped:[/] {escape(message)}", highlight=False, soft_wrap=True)
                existing += 1
                continue
            deblurrer.deblur_file(source, target)
        except ImageFileError as error:
            print_error(error)
            failed += 1
    summary = [f"{len(jobs) - failed - existing} of {len(jobs)} images deblurred into {args.out}"]
    summary += [f"{existing} skipped (their outputs exist)"] if existing else []
    summary += [f"{failed} failed"] if failed else []
    Console().print(", ".join(summary), highlight=False, soft_wrap=True)
    return EXIT_INPUTS_FAILED if failed else 0


def deblur_jobs(inputs: list[Path], out: Path) -> list[tuple[Path, Path]]:
    """(input, output) for each image named or found in a folder of `inputs`: the output at the input's path
    relative to the folder given (or its name, for a file) under `out`. Checked before the model loads."""
    from .image_files import list_images, output_name

    sources_by_target: dict[Path, Path] = {}
    for item in inputs:
        if item.is_dir():
            found = [(path, out / output_name(path.relative_to(item))) for path in list_images(item)]
            if not found:
                raise UserError(f"input folder {item} contains no images (looked for png, jpg, tif, bmp, webp, dcm)")
        elif item.is_file():
            found = [(item, out / output_name(Path(item.name)))]
        else:
            raise UserError(f"input not found: {item}")
        for source, target in found:
            earlier = sources_by_target.setdefault(target, source)
            if earlier.resolve() != source.resolve():  # the same file named twice is deblurred once
                raise UserError(f"{earlier} and {source} would both be written to {target}: use two --out folders")
    return [(source, target) for target, source in sources_by_target.items()]


def run_evaluate(args: argparse.Namespace) -> int:
    from .evaluation import evaluate_pairs, evaluate_sharpness, print_report, write_csv, write_json

    deblurrer = build_deblurrer(args)
    if args.sharp is None:
        report = evaluate_sharpness(deblurrer, args.blur)
    else:
        report = evaluate_pairs(deblurrer, args.blur, args.sharp)
    for reason in report.failed.values():
        print_error(reason)
    if not report.images:
        raise UserError(f"none of the {len(report.failed)} images in --blur {args.blur} could be scored")
    print_report(report)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(report, args.csv)
    return EXIT_INPUTS_FAILED if report.failed else 0


def run_export(args: argparse.Namespace) -> int:
    from .export.to_onnx import CHECK_COUNT, CHECK_SIZE, DEFAULT_INPUT_SIZE, DEFAULT_OPSET, check_images, export_checked, print_export
    from .inference import resolve_generator
    from .run_photos import own_photos

    if args.onnx.suffix != ".onnx":
        raise UserError(f"--onnx {args.onnx}: the file name must end in .onnx")
    if args.int8 and args.calibration is None:
        raise UserError("--int8 needs --calibration DIR: images whose activations set the int8 ranges")
    if args.int8 and args.fp16:
        raise UserError("--int8 quantizes the float32 model: leave out --fp16")
    if args.dynamic and args.input_size is not None:
        raise UserError("--input-size sets the one input size of a model without --dynamic: give one of them")
    check_folder = args.check_images or calibration_blur_folder(args.calibration)
    generator = resolve_generator(args.model)
    if check_folder is None:
        images, source = own_photos(args.model, generator.in_channels, CHECK_COUNT, CHECK_SIZE)
        Console().print(f"checking parity on {source}; --check-images DIR picks others", highlight=False, soft_wrap=True, markup=False)
    else:
        images = check_images(check_folder, generator.in_channels)
    options = {"opset": args.opset or DEFAULT_OPSET, "input_size": args.input_size or DEFAULT_INPUT_SIZE}
    print_export(export_checked(generator, args.onnx, images, dynamic=args.dynamic, fp16=args.fp16, **options))
    if args.int8:
        from .export.int8 import CALIBRATION_PERCENTILE, calibration_split, int8_report, print_int8, quantize_int8

        split = calibration_split(args.calibration)
        int8_path = args.onnx.with_suffix(".int8.onnx")
        quantize_int8(args.onnx, int8_path, split.calibration, args.calibration_percentile or CALIBRATION_PERCENTILE)
        print_int8(int8_report(args.onnx, int8_path, split))
    return 0


def calibration_blur_folder(calibration: Path | None) -> Path | None:
    """The blurred images of a --calibration folder (its blur/ when it has blur/ and sharp/)."""
    if calibration is None:
        return None
    paired = (calibration / "blur").is_dir() and (calibration / "sharp").is_dir()
    return calibration / "blur" if paired else calibration


def run_app(args: argparse.Namespace) -> int:
    try:
        import gradio  # noqa: F401
    except ImportError:
        raise UserError("cycledeblur app needs Gradio: pip install 'cycledeblur[app]'") from None
    from .app import build_app

    build_app(build_deblurrer(args), str(args.model)).launch(server_name=args.host, server_port=args.port)
    return 0


def run_report(args: argparse.Namespace) -> int:
    from .report import write_report

    print(f"wrote {write_report(args.run_dir, args.out)}")
    return 0


def run_models(args: argparse.Namespace) -> int:
    from .pretrained import BUNDLED_MODELS, PRETRAINED_ROOT, bundle_info
    from .pretrained.summary import summary_lines

    incomplete = 0
    for name in BUNDLED_MODELS:
        try:
            lines = summary_lines(bundle_info(name), PRETRAINED_ROOT / name)
        except UserError as error:
            print_error(error)
            incomplete += 1
            continue
        Console().print("\n".join(lines), highlight=False, soft_wrap=True, markup=False)
    return 2 if incomplete else 0


def run_push(args: argparse.Namespace) -> int:
    from .publish import push_run, stage_run
    from .training.model_card import DEFAULT_LICENSE

    if args.space:
        return run_push_space(args)

    license = args.license or DEFAULT_LICENSE
    options = {"include_partners": args.include_discriminators, "data_card": args.data_card, "license": license}
    if args.dry_run:
        files = stage_run(args.model, args.dry_run, args.repo_id, **options)
        message = f"staged {len(files)} files for {args.repo_id} in {args.dry_run} (nothing uploaded)"
    else:
        url = push_run(args.model, args.repo_id, private=args.private, revision=args.revision, token=args.token, **options)
        message = f"pushed {args.model} to {url}" + (f" (branch {args.revision})" if args.revision else "")
    Console().print(message, highlight=False, soft_wrap=True)
    return 0


def run_push_space(args: argparse.Namespace) -> int:
    model_only = {"--include-discriminators": args.include_discriminators, "--data-card": args.data_card, "--license": args.license}
    model_only["--revision"] = args.revision
    for option, given in model_only.items():
        if given:
            raise UserError(f"{option} is for a model repo (--repo-id); a Space (--space) gets the app and the generator")
    try:
        from .space import push_space, stage_space
    except ImportError:  # gradio: the Space's README records the version the app was built with
        raise UserError("push --space needs Gradio: pip install 'cycledeblur[app]'") from None
    if args.dry_run:
        files = stage_space(str(args.model), args.dry_run, args.space)
        message = f"staged {len(files)} files for the Space {args.space} in {args.dry_run} (nothing uploaded)"
    else:
        url = push_space(str(args.model), args.space, private=args.private, token=args.token)
        message = f"pushed the app around {args.model} to {url}"
    Console().print(message, highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
