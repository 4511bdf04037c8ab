"""The `cycledeblur` command line: train, synth, deblur, evaluate.

Exit codes: 0 success, 2 a user error (bad path, config or input; one line on stderr), 1 anything else.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from .errors import UserError

err_console = Console(stderr=True)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.run(args)
    except UserError as error:
        err_console.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("interrupted")
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cycledeblur", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train a deblurring generator: unpaired CycleGAN, or pix2pix with train.mode=paired")
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
    deblur.add_argument("--model", required=True, help="run folder, generator folder or Hub model id")
    deblur.add_argument("--out", required=True, type=Path, help="output folder")
    add_inference_arguments(deblur)
    deblur.set_defaults(run=run_deblur)

    evaluate = commands.add_parser(
        "evaluate", help="PSNR/SSIM on paired images, or a no-reference sharpness report without --sharp"
    )
    evaluate.add_argument("--model", required=True, help="run folder, generator folder or Hub model id")
    evaluate.add_argument("--blur", required=True, type=Path, help="folder of blurred images")
    evaluate.add_argument("--sharp", type=Path, help="folder of sharp images with the same names (optional)")
    evaluate.add_argument("--json", type=Path, help="write the mean and per-image scores to this JSON file")
    evaluate.add_argument("--csv", type=Path, help="write the per-image scores to this CSV file")
    add_inference_arguments(evaluate)
    evaluate.set_defaults(run=run_evaluate)
    return parser


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="YAML config (defaults: configs/default.yaml settings)")
    parser.add_argument(
        "--resume", nargs="?", const=True, default=None, metavar="PATH",
        help="continue from the newest checkpoint of output_dir, or from PATH (a checkpoint or run folder)",
    )  # fmt: skip
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.max_steps=100")


def add_inference_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1...")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--tile", type=int, default=None, help="process images larger than this as tiles (pixels)")
    parser.add_argument("--tile-overlap", type=int, default=32, help="overlap of neighbouring tiles (pixels)")
    parser.add_argument("--batch-size", type=int, default=1, help="tiles per forward pass")


def build_deblurrer(args: argparse.Namespace):
    from .inference import Deblurrer, resolve_generator

    return Deblurrer(
        resolve_generator(args.model), device=args.device, precision=args.precision,
        tile=args.tile, tile_overlap=args.tile_overlap, batch_size=args.batch_size,
    )  # fmt: skip


def run_train(args: argparse.Namespace) -> None:
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


def run_synth(args: argparse.Namespace) -> None:
    from .synth import synthesize_folder

    summary = synthesize_folder(
        args.sharp, args.out, kind=args.kind, seed=args.seed, paired=args.paired,
        noise_sigma=args.noise, jpeg_quality=args.jpeg, save_kernels=args.save_kernels,
    )  # fmt: skip
    Console().print(summary)


def run_deblur(args: argparse.Namespace) -> None:
    from rich.progress import track

    from .data import list_images, read_image, save_image_tensor

    deblurrer = build_deblurrer(args)
    jobs = []
    for item in args.inputs:
        if item.is_dir():
            jobs += [(path, args.out / path.relative_to(item)) for path in list_images(item)]
        elif item.is_file():
            jobs.append((item, args.out / item.name))
        else:
            raise UserError(f"input not found: {item}")
    for source, target in track(jobs, description="deblurring", transient=True):
        image, image_format = read_image(source, deblurrer.channels)
        save_image_tensor(deblurrer(image), target, image_format)
    Console().print(f"deblurred {len(jobs)} images into [bold]{args.out}[/]")


def run_evaluate(args: argparse.Namespace) -> None:
    from .evaluation import evaluate_pairs, evaluate_sharpness, print_report, write_csv, write_json

    deblurrer = build_deblurrer(args)
    if args.sharp is None:
        report = evaluate_sharpness(deblurrer, args.blur)
    else:
        report = evaluate_pairs(deblurrer, args.blur, args.sharp)
    print_report(report)
    if args.json:
        write_json(report, args.json)
    if args.csv:
        write_csv(report, args.csv)


if __name__ == "__main__":
    sys.exit(main())
