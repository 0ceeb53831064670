"""The pip requirements logged with every model, stated rather than inferred.

Inferring them makes MLflow load the model in a subprocess: seconds per checkpoint.
"""

from __future__ import annotations

from importlib import metadata

PACKAGES = ("mlflow", "keras", "tensorflow-cpu", "tensorflow", "pillow", "numpy", "pandas")


def pip_requirements() -> list[str]:
    """``name==version`` of each package of `PACKAGES` installed here."""
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name}=={metadata.version(name)}")
        except metadata.PackageNotFoundError:
            continue
    return found
