"""Rebuild scripts/plots/offline.html: DVC's plots page with vega, vega-lite and vega-embed
inlined, so `dvc plots show` / `dvc plots diff` pages load no third-party script and work
offline.

    python scripts/plots/build_template.py     # needs npm and the npm registry, once

Each package is fetched with `npm pack` at the version pinned below, its tarball is checked
against the pinned sha512 integrity and its licence against the expected one, and only its
prebuilt browser bundle (build/*.min.js) is copied. To move to newer versions: change a pin,
run with --update-integrity, review NOTICE.md, commit both files.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess  # nosec B404 - runs npm with fixed arguments
import sys
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "offline.html"
NOTICE = HERE / "NOTICE.md"
# name: (version, bundle inside the tarball, sha512 integrity from the npm registry, licence)
PACKAGES = {
    "vega": (
        "6.4.0",
        "package/build/vega.min.js",
        "sha512-rHXCq2LpEWCLMjXBEj7hocY9G0/i5TGYRayGGSj06VTF4+l2IG2Z7oeZKCjWbUh/7hTE/mVhbaOPB72wCElh6g==",  # noqa: E501  # pragma: allowlist secret
        "BSD-3-Clause",
    ),
    "vega-lite": (
        "6.5.0",
        "package/build/vega-lite.min.js",
        "sha512-fMXF6s0MrIg0UTWnLIfeFtgSLzVhyzSKobzGrh5rhS+mL6FOYFG3m7ouJ4U23gj65EK+gl9FIIT5w7wLNaAzkA==",  # noqa: E501  # pragma: allowlist secret
        "BSD-3-Clause",
    ),
    "vega-embed": (
        "7.3.0",
        "package/build/vega-embed.min.js",
        "sha512-wQ8s5GaSzqoKgmRfbRolgBrjE2CP7ZKHXqH7NijxMqPjpdWxSs4Dn8tvp9g0giQvh2cK+3p56sxjWWM0wNngGw==",  # noqa: E501  # pragma: allowlist secret
        "BSD-3-Clause",
    ),
}

# Nothing may be fetched from anywhere; vega compiles expressions with Function ('unsafe-eval');
# the PNG plots DVC copies beside the page are files.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
    "img-src 'self' file: data: blob:; font-src data:"
)
# DVC fills {plot_divs} (and {refresh_tag}); there is deliberately no {scripts} placeholder,
# where DVC would put its <script src="https://cdn.jsdelivr.net/..."> tags.
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
{refresh_tag}
<meta http-equiv="Content-Security-Policy" content="CSP">
<title>Plots</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
body > div { display: inline-block; vertical-align: top; margin: 0 1.5rem 2rem 0; }
h1 { font-size: 1.4rem; }
p.note { color: #555; font-size: 0.9rem; }
</style>
<!-- vega VEGA, vega-lite VEGA_LITE, vega-embed VEGA_EMBED, inlined from npm by
     scripts/plots/build_template.py; licences in scripts/plots/NOTICE.md -->
INLINE_SCRIPTS
<script>
// No "Open in Vega Editor" (a third-party site): keep only the export actions.
const embedWithoutEditor = vegaEmbed;
window.vegaEmbed = (el, spec, opt) => embedWithoutEditor(el, spec,
  Object.assign({actions: {export: true, source: false, compiled: false, editor: false}}, opt));
</script>
</head>
<body>
<h1>Plots</h1>
<p class="note">Made by dvc plots show / dvc plots diff (make plots, make plots-diff REV=...).
Each chart draws every revision or experiment it was given; no network is used.</p>
{plot_divs}
</body>
</html>
"""


def integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(name: str, version: str, folder: Path) -> Path:
    npm = shutil.which("npm")
    if npm is None:
        sys.exit("build_template: npm is not installed; install Node.js (it brings npm)")
    done = subprocess.run(  # nosec B603 - fixed arguments
        [npm, "pack", "--json", f"{name}@{version}", "--pack-destination", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"build_template: npm pack {name}@{version} failed: {done.stderr.strip()[-300:]}")
    return folder / json.loads(done.stdout)[0]["filename"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--update-integrity",
        action="store_true",
        help="print the integrity of each tarball instead of checking it",
    )
    args = parser.parse_args(argv)
    scripts, notices = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (version, bundle, expected, licence) in PACKAGES.items():
            tarball = fetch(name, version, Path(tmp))
            found = integrity(tarball.read_bytes())
            if args.update_integrity:
                print(f"{name}@{version}: {found}")
            elif found != expected:
                sys.exit(
                    f"build_template: {name}@{version} integrity {found} is not the pinned "
                    f"{expected}; refusing it"
                )
            with tarfile.open(tarball) as archive:
                meta = json.load(archive.extractfile("package/package.json"))  # type: ignore[arg-type]
                code = archive.extractfile(bundle).read().decode("utf-8")  # type: ignore[union-attr]
                licence_text = archive.extractfile("package/LICENSE").read().decode("utf-8")  # type: ignore[union-attr]
            if meta.get("license") != licence:
                sys.exit(
                    f"build_template: {name}@{version} is licensed {meta.get('license')!r}, "
                    f"not {licence}; review it before inlining"
                )
            if "</script" in code.lower() or "{plot_divs}" in code:
                sys.exit(f"build_template: {name}'s bundle cannot be inlined as it is")
            scripts.append(f"<script>/* {name}@{version} ({licence}) */\n{code}\n</script>")
            notices.append(
                f"## {name} {version} ({licence})\n\n```text\n{licence_text.strip()}\n```\n"
            )
    if args.update_integrity:
        return 0
    page = (
        PAGE.replace("VEGA_LITE", PACKAGES["vega-lite"][0])
        .replace("VEGA_EMBED", PACKAGES["vega-embed"][0])
        .replace("VEGA", PACKAGES["vega"][0])
        .replace('content="CSP"', f'content="{CSP}"')
        .replace("INLINE_SCRIPTS", "\n".join(scripts))
    )
    TEMPLATE.write_text(page, encoding="utf-8")
    NOTICE.write_text(
        "# Third-party code in scripts/plots/offline.html\n\n"
        "The plots page template inlines the browser bundles of three npm packages of the\n"
        "University of Washington Interactive Data Lab, written by `build_template.py` from the\n"
        "pinned versions and integrity hashes in that script. The bundles also carry the code\n"
        "of their own dependencies: d3 modules and topojson-client (ISC), fast-json-patch and\n"
        "json-stringify-pretty-compact (MIT), semver (ISC), tslib (0BSD), vega-themes and\n"
        "vega-tooltip (BSD-3-Clause). Their licences allow redistribution with these notices.\n\n"
        + "\n".join(notices),
        encoding="utf-8",
    )
    print(f"wrote {TEMPLATE.relative_to(HERE.parents[1])} ({TEMPLATE.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
