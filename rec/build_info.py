"""Which PaddlePaddle is installed, and the GPUs it would see, told without importing it
(importing costs seconds)."""

from __future__ import annotations

import os
import sys

DISTRIBUTIONS = {"paddlepaddle-gpu": "CUDA build", "paddlepaddle": "CPU build"}
GPU_HELP = ("this PaddlePaddle is a CPU-only build, so --device gpu cannot work. Install the "
            "CUDA build instead: `pip uninstall -y paddlepaddle && pip install paddlepaddle-gpu` "
            "(pick the wheel for your CUDA version at https://www.paddlepaddle.org.cn/install), "
            "or use --device cpu")


def installed_versions(dists) -> dict[str, str]:
    """dist -> version of those installed, read from the first NAME-VERSION.dist-info
    folder on sys.path (where importlib.metadata finds it). Importing importlib.metadata
    costs a fifth of `import numpy`, on every `rec status`: it is asked only when none of
    `dists` has such a folder (an egg install, say, or none at all)."""
    prefixes = {dist.replace("-", "_").lower() + "-": dist for dist in dists}
    found = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:  # a zip file, a missing folder
            continue
        for name in names:
            if not name.endswith(".dist-info"):
                continue
            for prefix, dist in prefixes.items():
                if name.lower().startswith(prefix) and dist not in found:
                    found[dist] = name[len(prefix):-len(".dist-info")]
    if found:
        return found
    from importlib import metadata

    for dist in dists:
        try:
            found[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return found


def paddle_build() -> str:
    """e.g. 'paddlepaddle 3.3.1, CPU build', from the installed distribution's name."""
    versions = installed_versions(DISTRIBUTIONS)
    for dist, kind in DISTRIBUTIONS.items():
        if dist in versions:
            return f"{dist} {versions[dist]}, {kind}"
    return "PaddlePaddle is not installed (pip install paddlepaddle)"


def visible_gpus() -> int:
    """The GPUs a CUDA build would see, without importing paddle: those CUDA_VISIBLE_DEVICES
    names when it is set, else those the NVIDIA driver lists (none without the driver)."""
    chosen = os.environ.get("CUDA_VISIBLE_DEVICES")
    if chosen is not None:
        names = [n.strip() for n in chosen.split(",") if n.strip()]
        return len(names[:next((i for i, n in enumerate(names) if n.startswith("-")),
                               len(names))])  # CUDA stops at the first invalid id
    try:
        return len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        return 0


def paddle_devices() -> str:
    """`rec --version`'s line: the build, and for a CUDA build the GPUs it would see
    ('paddlepaddle-gpu 3.3.1, CUDA build, 2 GPU(s)'), all read from files: importing
    paddle to ask it takes a quarter of a second."""
    build = paddle_build()
    return f"{build}, {visible_gpus()} GPU(s)" if build.endswith("CUDA build") else build


def device_problem(device: str) -> str | None:
    """What is wrong with a --device value, told without importing paddle: not cpu, gpu or
    gpu:N, or a GPU asked of a CPU-only build (rec.engine.runtime.setup_device checks the rest, the
    GPUs visible, once paddle is imported). For `rec pipeline`, before its first stage."""
    import re

    d = device.strip().lower()
    if d == "cpu":
        return None
    if not re.fullmatch(r"gpu(?::\d+)?", d):
        return f"--device must be cpu, gpu or gpu:N (got {device!r})"
    versions = installed_versions(DISTRIBUTIONS)
    if "paddlepaddle" in versions and "paddlepaddle-gpu" not in versions:
        return GPU_HELP
    return None
