"""Take the README's pictures of the run report and of the app, in headless Chromium (Playwright).

Rerun: python docs/screenshots.py RUN PHOTO [--model M] [--out docs/figures]
RUN is a finished run folder (its report is written again first), PHOTO a blurred image uploaded to the app,
M the app's model (default: RUN).
"""

from __future__ import annotations

import argparse
import shutil
import socket
from pathlib import Path

from cycledeblur.app import build_app
from cycledeblur.inference import Deblurrer, resolve_generator
from cycledeblur.report import write_report


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--model", help="the app's model (default: RUN)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures"))
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    report = write_report(args.run)
    args.out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    model = args.model or str(args.run)
    app = build_app(Deblurrer(resolve_generator(model)), model)
    app.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 1300})
            page.goto(report.resolve().as_uri())
            # the end of the samples (the kernels), then the before / after pictures
            page.get_by_role("heading", name="Before / after").evaluate(
                "heading => { heading.scrollIntoView(); window.scrollBy(0, -320); }"
            )
            box = page.locator(".compare").first.bounding_box()
            page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] + box["width"] * 0.35, box["y"] + box["height"] / 2, steps=4)
            page.mouse.up()
            page.screenshot(path=args.out / "report.png")

            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("input[type=file]").first.set_input_files(str(args.photo))
            page.get_by_role("button", name="Deblur").click()
            page.get_by_text(f"{args.photo.stem}-deblurred").first.wait_for(timeout=300_000)  # the download is ready
            page.wait_for_load_state("networkidle")
            page.screenshot(path=args.out / "app.png")
            browser.close()
    finally:
        app.close()
    print(f"wrote {args.out / 'report.png'} and {args.out / 'app.png'}")
    print(f"rerun: python docs/screenshots.py {args.run} {args.photo}" + (f" --model {args.model}" if args.model else ""))


if __name__ == "__main__":
    main()
