"""A page template for `dvc plots show` that draws the plots without internet.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN, so offline its plots are blank.
`dvc plots show --html-template FILE` takes any page holding ``{plot_divs}``; this one inlines the
three libraries from the `vl-convert-python` wheel (its `javascript_bundle`, which sets the globals
`vegaEmbed`, `vega`, `vegaLite` the plot divs call), so the written index.html needs nothing else.
Vega-Lite 5 is DVC's templates' version (their ``$schema``).
"""

from __future__ import annotations

import os
from pathlib import Path

from mlimages.errors import InputError

VEGA_LITE_VERSION = "5.21"

PAGE = """<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>mlimages: DVC plots</title>
<script type="text/javascript">
BUNDLE
</script>
<style>body { font-family: sans-serif; } table { border-spacing: 15px; }</style>
</head>
<body>
{plot_divs}
</body>
</html>
"""


def make_offline_page() -> str:
    """The page template with the JavaScript bundle inlined (about 1 MB)."""
    try:
        import vl_convert
    except ImportError:
        raise InputError("needs the vl-convert-python package: pip install -e '.[plots]'", "offline plots") from None
    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION)
    if "{plot_divs}" in bundle or "</script" in bundle.lower():
        raise InputError("the bundle holds a placeholder or a closing script tag; pick another version", "vl-convert")
    return PAGE.replace("BUNDLE", bundle)


def write_offline_page(path: str | Path) -> Path:
    """Write the template to `path` atomically; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(make_offline_page(), encoding="utf-8")
    os.replace(temporary, path)
    return path
