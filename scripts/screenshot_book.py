"""Screenshot built book pages with headless Chromium and cut them into tiles to look at.

    python scripts/screenshot_book.py notebooks/00_quickstart.html book/intro.html --out /tmp/shots

Needs Debian's `chromium` (apt-get install chromium fonts-noto-cjk). Offline: the book's HTML
loads nothing from the network.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--virtual-time-budget=4000"]


def shoot(html: Path, page: str, out: Path, width: int, height: int, tile: int) -> list[Path]:
    """Screenshot one page at width x height and split it into tiles of *tile* pixels."""
    from PIL import Image
    png = out / (Path(page).with_suffix("").as_posix().replace("/", "_") + ".png")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        sys.exit("screenshot_book: chromium not found (apt-get install chromium)")
    subprocess.run([browser, *FLAGS, f"--window-size={width},{height}", f"--screenshot={png}",
                    (html / page).resolve().as_uri()], check=True, capture_output=True, timeout=120)
    img = Image.open(png)
    # drop the blank bottom of the page
    bbox = img.convert("L").point(lambda v: 255 - v).getbbox()
    if bbox:
        img = img.crop((0, 0, img.width, min(img.height, bbox[3] + 20)))
    tiles = []
    for i, top in enumerate(range(0, img.height, tile)):
        t = out / f"{png.stem}-{i}.png"
        img.crop((0, top, img.width, min(img.height, top + tile))).save(t)
        tiles.append(t)
    return tiles


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("pages", nargs="+", help="pages relative to the HTML folder")
    p.add_argument("--html", default="_build/html")
    p.add_argument("--out", default="/tmp/book-shots")
    p.add_argument("--width", type=int, default=1280)
    p.add_argument("--height", type=int, default=6000)
    p.add_argument("--tile", type=int, default=1400)
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for page in args.pages:
        for t in shoot(Path(args.html), page, out, args.width, args.height, args.tile):
            print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
