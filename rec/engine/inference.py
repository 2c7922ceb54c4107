"""Static inference models for serving (imports paddle): one trained network saved with
`paddle.jit.save` (InputSpecs, batch dimension None), optionally converted to ONNX, then
loaded back the way a server would (`paddle.inference` predictor, or onnxruntime) and run
on real rows; it must reproduce the trained model's outputs to TOLERANCE.

`rec export` (rec.stages.export) builds the `Network`s (rec.twotower.export,
rec.ctr.export) and writes what `export` returns into export.json.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from rec.console import is_verbose
from rec.errors import RecError, UsageError
from rec.engine.runtime import setup_device  # noqa: F401  first: it quiets paddle's import noise

import paddle  # noqa: E402

TOLERANCE = 1e-5
PREFIX = "model"  # <name>/model.json (PIR) or model.pdmodel, model.pdiparams, model.onnx
ONNX_OPSET = 13
ONNX_MISSING = ("--to onnx needs paddle2onnx and onnxruntime: pip install 'rec-paddle[onnx]' "
                "(in a checkout: pip install -e '.[onnx]')")


@dataclass
class Network:
    """One network to export: a layer whose forward(*inputs) returns one float32 array."""

    name: str  # its folder under output/export, e.g. user_tower
    layer: paddle.nn.Layer
    inputs: list[tuple[str, str, list]]  # (name, dtype, shape with None for the batch)
    output: str  # what the output is, e.g. "user vectors (usr_feat.pkl)"
    rows: list[np.ndarray]  # real input rows, in input order
    expected: dict[str, np.ndarray]  # what the outputs must be: {source: array}
    about: dict = field(default_factory=dict)  # more for export.json


def onnx_modules():
    """(paddle2onnx, onnxruntime), or a usage error (exit 2) saying what to install."""
    try:
        import onnxruntime
        import paddle2onnx
    except ImportError:
        raise UsageError(ONNX_MISSING)
    return paddle2onnx, onnxruntime


def save_static(net: Network, folder: Path) -> dict[str, Path]:
    """paddle.jit.save the network into `folder`; the files it wrote, by role. Paddle 3
    writes the program as model.json (PIR), older ones as model.pdmodel."""
    folder.mkdir(parents=True, exist_ok=True)
    specs = [paddle.static.InputSpec([None, *shape[1:]], dtype, name)
             for name, dtype, shape in net.inputs]
    net.layer.eval()
    with warnings.catch_warnings():  # paddle's own notes while it traces the program
        warnings.simplefilter("ignore")
        paddle.jit.save(net.layer, str(folder / PREFIX), input_spec=specs)
    files = {"params": folder / f"{PREFIX}.pdiparams"}
    for suffix in (".json", ".pdmodel"):
        if (folder / f"{PREFIX}{suffix}").exists():
            files["model"] = folder / f"{PREFIX}{suffix}"
            break
    if "model" not in files or not files["params"].exists():
        raise RecError(f"paddle.jit.save wrote no model and params in {folder}: "
                       f"{sorted(os.listdir(folder))}")
    return files


def run_paddle(files: dict[str, Path], rows: list[np.ndarray]) -> tuple[np.ndarray, list, list]:
    """Load the static model with paddle.inference (on the CPU) and run it on `rows`:
    (output, input names, output names)."""
    from paddle import inference

    config = inference.Config(str(files["model"]), str(files["params"]))
    config.disable_gpu()
    config.disable_glog_info()
    predictor = inference.create_predictor(config)
    names = predictor.get_input_names()
    for name, array in zip(names, rows):
        handle = predictor.get_input_handle(name)
        handle.reshape(array.shape)
        handle.copy_from_cpu(np.ascontiguousarray(array))
    predictor.run()
    outputs = predictor.get_output_names()
    return predictor.get_output_handle(outputs[0]).copy_to_cpu(), names, outputs


def to_onnx(files: dict[str, Path], target: Path) -> None:
    """paddle2onnx (inside `libraries_quiet`: it logs on its own). No constant folding
    with Polygraphy, its default: Polygraphy pip-installs what it lacks (onnx_graphsurgeon,
    sympy) while it runs, and a command must not change the environment; the model is
    verified with onnxruntime all the same."""
    paddle2onnx, _ = onnx_modules()
    try:
        paddle2onnx.utils.logging.log_level = 2 if is_verbose() else 0  # errors only
        paddle2onnx.export(str(files["model"]), str(files["params"]), save_file=str(target),
                           opset_version=ONNX_OPSET, enable_onnx_checker=True,
                           optimize_tool="none")
    except SystemExit:  # paddle2onnx's logging.error ends the process: one line instead
        raise RecError(f"paddle2onnx could not convert {target.parent.name}; nothing written "
                       "(rerun with -v for its log)") from None
    if not target.is_file():
        raise RecError(f"paddle2onnx wrote no {target}")


@contextlib.contextmanager
def libraries_quiet() -> Iterator[None]:
    """Around the libraries that log on their own (paddle2onnx's C++ and Python prints,
    paddle's glog lines, onnxruntime's warnings; naming temporary folders): what they write
    to stdout and stderr, from Python or C, goes to a temporary file, so the terminal shows
    the command's own lines and stdout only its results. With -v it goes to stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.ExitStack() as stack:
        if is_verbose():
            sink, targets = sys.stderr, [(1, 2)]
        else:
            sink = stack.enter_context(tempfile.TemporaryFile("w+"))
            targets = [(1, sink.fileno()), (2, sink.fileno())]
        saved = [(fd, os.dup(fd)) for fd, _ in targets]
        try:
            for fd, to in targets:
                os.dup2(to, fd)
            with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
                yield
        finally:
            for stream in (sys.stdout, sys.stderr, sink):
                stream.flush()
            for fd, old in saved:
                os.dup2(old, fd)
                os.close(old)


def run_onnx(path: Path, rows: list[np.ndarray]) -> tuple[np.ndarray, list, list]:
    _, onnxruntime = onnx_modules()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    out = session.run(outputs[:1], dict(zip(names, rows)))[0]
    return out, names, outputs


def max_diffs(net: Network, out: np.ndarray) -> dict[str, float]:
    """The largest difference of `out` from each expected array; an error (exit 1) above
    TOLERANCE or on a shape mismatch."""
    diffs = {}
    for source, expected in net.expected.items():
        hint = (" (saved from another model? run `rec save-features`)"
                if source.endswith(".pkl") else "")
        if out.shape != expected.shape:
            raise RecError(f"export {net.name}: output shape {out.shape}, {source} "
                           f"{expected.shape}{hint}; nothing written")
        diffs[source] = float(np.abs(out.astype(np.float64) - expected).max()) if out.size else 0.0
        if not diffs[source] <= TOLERANCE:
            raise RecError(f"export {net.name}: the exported model differs from {source} by "
                           f"{diffs[source]:.2e} (> {TOLERANCE:g}){hint}; nothing written")
    return diffs


FULL_BELOW = 1 << 20  # bytes free under which a folder counts as full


@contextlib.contextmanager
def read_back(net: Network, folder: Path) -> Iterator[None]:
    """Loading back what paddle.jit.save wrote: paddle's C++ writer meets a full disk
    without an error and leaves truncated files, which fail here. A full disk is then
    reported as the OSError a Python write would have raised (one line naming the folder,
    exit 1), anything else in one line, not as paddle's parse error."""
    try:
        yield
    except (RuntimeError, ValueError) as e:
        if shutil.disk_usage(folder).free < FULL_BELOW:  # as a Python write would have said
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder)) from None
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RecError(f"export {net.name}: paddle cannot read back the model it wrote in "
                       f"{folder} ({first}); nothing written") from None


def export(net: Network, folder: Path, to: str, scratch: Path) -> dict:
    """Write `net` into `folder` as a Paddle inference model (to="paddle") or ONNX
    (to="onnx", built from the Paddle one in `scratch`), verified on its rows; its
    export.json entry (paths relative to folder's parent)."""
    with libraries_quiet():
        if to == "onnx":
            files = save_static(net, scratch / net.name)
            folder.mkdir(parents=True, exist_ok=True)
            to_onnx(files, folder / f"{PREFIX}.onnx")
            files = {"model": folder / f"{PREFIX}.onnx"}
            out, in_names, out_names = run_onnx(files["model"], net.rows)
        else:
            files = save_static(net, folder)
            with read_back(net, folder):
                out, in_names, out_names = run_paddle(files, net.rows)
    if in_names != [name for name, _, _ in net.inputs]:
        raise RecError(f"export {net.name}: inputs came back as {in_names}; nothing written")
    diffs = max_diffs(net, out)
    return {
        "files": {role: str(p.relative_to(folder.parent)) for role, p in files.items()},
        "inputs": [{"name": n, "dtype": d, "shape": [None, *s[1:]]} for n, d, s in net.inputs],
        "outputs": [{"name": out_names[0], "dtype": str(out.dtype),
                     "shape": [None, *out.shape[1:]], "is": net.output}],
        "verified": {"rows": int(len(net.rows[0])), "max_abs_diff": diffs,
                     "tolerance": TOLERANCE,
                     "runtime": "onnxruntime" if to == "onnx" else "paddle.inference"},
        **net.about,
    }
