"""Which PaddlePaddle is installed, told without importing it (importing costs seconds)."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTIONS = {"paddlepaddle-gpu": "CUDA build", "paddlepaddle": "CPU build"}


def paddle_build() -> str:
    """e.g. 'paddlepaddle 3.3.1, CPU build', from the installed distribution's name."""
    for dist, kind in DISTRIBUTIONS.items():
        try:
            return f"{dist} {metadata.version(dist)}, {kind}"
        except metadata.PackageNotFoundError:
            continue
    return "PaddlePaddle is not installed (pip install paddlepaddle)"


def paddle_devices() -> str:
    """The build as Paddle itself reports it, with the GPU count (imports paddle)."""
    try:
        from rec import runtime
    except ImportError as e:
        return f"PaddlePaddle cannot be imported: {e}"
    return runtime.describe_build()
