"""Render a hipseg QC report (HTML) to a PNG screenshot in headless Chromium.

Usage::

    python tools/render_report.py OUT/case_000_report.html [--out shot.png] [--size 1400,3000]

Prints the screenshot's path. Exits 2 with a message naming the package when no Chromium
is installed (Debian/Ubuntu: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_browser() -> str | None:
    """Path of the first Chromium-like browser on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def render(html_path: Path, screenshot: Path, window_size: str = "1400,3000",
           timeout_s: float = 120.0) -> Path:
    """Screenshot ``html_path`` into ``screenshot`` with headless Chromium; return its path."""
    browser = find_browser()
    if browser is None:
        raise FileNotFoundError("Chromium is not installed (looked for "
                                f"{', '.join(BROWSERS)}); install it with: "
                                "apt-get install -y chromium")
    html_path, screenshot = Path(html_path).resolve(), Path(screenshot).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(f"{html_path}: report not found")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="hipseg-chromium-") as profile:
        command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                   "--no-first-run", "--disable-background-networking",
                   "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                   f"--user-data-dir={profile}", f"--screenshot={screenshot}",
                   f"--window-size={window_size}", html_path.as_uri()]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s,
                                check=False)
    if result.returncode != 0 or not screenshot.is_file():
        raise RuntimeError(f"Chromium failed (exit {result.returncode}):\n{result.stderr[-2000:]}")
    return screenshot


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", type=Path, help="the report HTML file")
    parser.add_argument("--out", type=Path, default=None,
                        help="screenshot path (default: the report's name with .png)")
    parser.add_argument("--size", default="1400,3000", help="window size WIDTH,HEIGHT in pixels")
    args = parser.parse_args(argv)
    out = args.out or args.report.with_name(args.report.name.removesuffix(".html") + "_screenshot.png")
    try:
        print(render(args.report, out, args.size))
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
