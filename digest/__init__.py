"""digest: a weekly newsletter from a folder of Markdown posts."""

from typing import Any


def __getattr__(name: str) -> Any:
    # the version is read from the installed metadata only when asked for: importlib.metadata costs more
    # than the rest of `digest --help`
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("digest")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0"
    raise AttributeError(name)
