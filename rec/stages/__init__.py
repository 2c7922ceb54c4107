"""The command line only: one module per command, a thin layer over the domain code
(options, checks, wiring, output), plus `stage`, the one decorator of every command (its
options, its folders' locks, one error line and an exit code), the shared options
(options.py) and option values without pydantic (values.py).

Stage modules import neither paddle nor rec.twotower, rec.ctr, rec.models at module level:
`rec --help`, `--version`, `download`, `preprocess`, `status` and `recommend` stay fast
because only the commands that need them import them, inside their functions.
"""

from __future__ import annotations

import dataclasses
import errno
import functools
import inspect
import os
import sys
import typing
from typing import Callable

import typer

from rec.console import debug, error_line, is_verbose

from rec.results import resolve_format, set_header
from rec.errors import (EXIT_PIPE_CLOSED, ReaderGone, RecError, UsageError,
                        environment_error)
from rec.paths import Paths
from rec.stages.options import NoHeader


def get_paths(ctx: typer.Context) -> Paths:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, Paths) else None
    return obj or Paths.from_env()


def _folders(ctx, writes: tuple[str, ...]) -> list:
    """The folders (`data`, `output`) a writing command owns while it runs, in one fixed
    order (data before output), so that two commands never wait on each other in a cycle."""
    if ctx is None:
        return []
    paths = get_paths(ctx)
    return [getattr(paths, f"{name}_dir") for name in sorted(set(writes))]


def preflight(paths: Paths, folders: list, into: tuple[str, ...]) -> None:
    """Before any work, the environment faults a writing command would meet late: each
    folder it writes (`folders`, and `into`: Paths attributes such as model_dir or
    ctr.checkpoint, the folders it replaces whole among them) must take
    a file (rec.storage.atomic.check_writable), and manifest.json must not be a folder. One line
    (exit 1, or 2 for a file where a folder is needed), and nothing is changed."""
    from pathlib import Path

    from rec.storage.atomic import check_writable, swap_location

    try:
        for folder in [*folders, *(functools.reduce(getattr, name.split("."), paths)
                                   for name in into)]:
            if os.path.islink(folder):  # written through (rec.storage.atomic.swap_location)
                folder = swap_location(Path(folder))
            check_writable(folder)
        if folders and paths.manifest.is_dir():
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(paths.manifest))
    except OSError as e:
        raise environment_error(e, nothing_changed=True) or e


def stage(fn=None, *, writes: tuple[str, ...] = (), into: tuple[str, ...] = (), params=None):
    """The one decorator of every command (`@stage`, or `@stage(writes=..., params=...)`):
    its options, and how it ends.

    Options: the function's parameters after `ctx`, each a typer option or argument. With
    `params` (a dataclass whose fields are Annotated options, with their defaults), the
    fields come first and the function receives them as one `params` object, its second
    parameter: a training run's parameters are spelled once (the field, its option, its
    default). `--format` (parameter `fmt`) is checked and resolved before the command does
    any work: the command gets table, tsv, csv or json. A command with `--format` also gets
    `--no-header` (options.NoHeader), handled here: the command never sees it.

    `writes` names the folders the command writes ("data", "output"): it holds their locks
    (rec.storage.lock) while it runs, so a second writer stops at once with one line (exit
    2), and first finishes the folder swaps a killed run left halfway
    (rec.storage.recovery). Readers declare none and never wait. Before the command runs,
    every folder it writes (those, and `into`: the Paths attributes of its own folders) is
    checked (`preflight`). SIGTERM ends a command as Ctrl-C does (rec.process.interrupts):
    cleanup runs, then one line and exit 143 (130 for Ctrl-C).

    Expected failures end in one stderr line and an exit code, never a traceback: faults of
    the environment (rec.errors.environment_error) name the path; stdout's reader going away
    (`| head -1`) ends the command quietly, exit 141."""
    if fn is None:
        return functools.partial(stage, writes=writes, into=into, params=params)
    signature, arguments = _options(fn, params)
    with_format = "fmt" in signature.parameters

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from rec.process import interrupts

        with interrupts.sigterm_interrupts():
            return run(*args, **kwargs)

    def run(*args, **kwargs):
        from rec.process import interrupts
        from rec.storage import lock

        try:
            if with_format:
                set_header(not kwargs.pop("no_header", False))
            if isinstance(kwargs.get("fmt"), str):
                kwargs["fmt"] = resolve_format(kwargs["fmt"])
            ctx = next((a for a in args if isinstance(a, typer.Context)), kwargs.get("ctx"))
            name = f"rec {ctx.info_name}" if ctx is not None else None
            if ctx is not None:
                paths = get_paths(ctx)
                given = {k: v for k, v in kwargs.items() if k != "ctx"}
                debug(f"{name}: data folder {paths.data_dir}, output folder {paths.output_dir}, "
                      f"parameters {given}")
                if not writes:  # a reader would say "missing .../usr_feat.pkl: run ..."
                    for folder, option in ((paths.output_dir, "--output-dir"),
                                           (paths.data_dir, "--data-dir")):
                        if os.path.lexists(folder) and not os.path.isdir(folder):
                            raise UsageError(f"{folder} is a file, not a folder: give "
                                             f"{option} a folder")
                check_layout(paths)
                if writes:  # a writer records its parameters: and which are its defaults
                    _note_defaults(ctx)
            folders = _folders(ctx, writes)
            with lock.hold_all(folders, name):
                if ctx is not None:
                    _recover(get_paths(ctx), writes, name)
                if folders and not lock.is_worker():  # a --nproc launcher checked for all
                    preflight(get_paths(ctx), folders, into)
                return fn(*args, **arguments(kwargs))
        except (ReaderGone, BrokenPipeError):
            # The reader of our stdout went away (`| head`): not worth a message.
            sys.stdout = open(os.devnull, "w")
            raise typer.Exit(EXIT_PIPE_CLOSED)
        except RecError as e:
            error_line(str(e))
            raise typer.Exit(e.exit_code)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (rec.process.interrupts)
            how = "terminated (SIGTERM)" if isinstance(e, interrupts.Terminated) else "interrupted"
            hint = getattr(e, "resume_hint", None)  # rec.engine.trainer.fit's
            error_line(f"{how}; files already written are complete, nothing half-written was "
                       f"kept{'; ' + hint if hint else ''}")
            raise typer.Exit(interrupts.exit_code(e))
        except OSError as e:
            fault = environment_error(e)
            if fault is None:
                raise _internal(e)
            error_line(str(fault))
            raise typer.Exit(fault.exit_code)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as e:  # a bug: still one line, the traceback on request
            raise _internal(e)

    wrapper.__signature__ = signature
    if with_format:
        wrapper.__annotations__ = {**fn.__annotations__, "no_header": NoHeader}
    return wrapper


def _options(fn, params_cls) -> tuple[inspect.Signature, Callable[[dict], dict]]:
    """The signature typer reads for `fn` (`ctx`, params_cls's fields, fn's own parameters,
    then --no-header where there is --format), and the function turning the values typer
    passes into fn's keyword arguments (the fields gathered into one params_cls object)."""
    signature = inspect.signature(fn, eval_str=True)
    parameters = list(signature.parameters.values())
    fields = []
    if params_cls is not None:
        hints = typing.get_type_hints(params_cls, include_extras=True)
        fields = dataclasses.fields(params_cls)
        names = [f.name for f in fields]
        ctx, gathered, *own = parameters
        parameters = [ctx, *[inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY,
                                               default=f.default, annotation=hints[f.name])
                             for f in fields],
                      *[p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]]
    if "fmt" in signature.parameters:
        parameters.append(inspect.Parameter("no_header", inspect.Parameter.KEYWORD_ONLY,
                                            default=False, annotation=NoHeader))

    def arguments(given: dict) -> dict:
        if params_cls is None:
            return given
        own = {name: value for name, value in given.items() if name not in names}
        return {**own, gathered.name: params_cls(**{name: given[name] for name in names})}

    return signature.replace(parameters=parameters), arguments


def _note_defaults(ctx) -> None:
    """The command's option defaults, for manifest.record (plain values only: JSON)."""
    from rec.storage import manifest

    plain = (str, int, float, bool, type(None))
    manifest.set_option_defaults({p.name: p.default for p in ctx.command.params
                                  if isinstance(p.default, plain)})


def check_layout(paths: Paths) -> None:
    """Data and output folders that overlap so that one stage would delete what another
    owns (rec.paths.overlap) are refused before any command runs (exit 2)."""
    from rec.datasets import registry
    from rec.paths import overlap

    why = overlap(paths, registry.names())
    if why:
        raise UsageError(why)


def _recover(paths: Paths, writes: tuple[str, ...], name: str | None) -> None:
    """Finish the folder swaps a killed run left halfway (rec.storage.recovery): a writer of
    output/ under its lock (not a --nproc worker: its launcher did), a reader if it can."""
    from rec.storage import lock, recovery

    if "output" in writes and not lock.is_worker():
        recovery.recover(paths)
        _recover_data(paths, name, held="data" in writes
                      or lock.same_folder(paths.data_dir, paths.output_dir))
    elif not writes:
        recovery.recover_as_reader(paths, name)


def _recover_data(paths: Paths, name: str | None, held: bool) -> None:
    """data/<dataset> folders a killed `rec download` left halfway: a writing stage (say
    preprocess, which reads them) restores them too, under the data folder's lock if that
    is free at once (held: a running download's swap is its own and is left alone)."""
    import contextlib

    from rec.storage import atomic, lock, recovery
    from rec.datasets import registry

    found = [paths.raw(n) for n in registry.names() if atomic.leftovers(paths.raw(n))]
    if not found:
        return
    try:
        with contextlib.nullcontext() if held else lock.hold(paths.data_dir, name):
            for folder in found:
                recovery.repair(folder)
    except lock.Busy:
        pass


def _internal(e: Exception) -> Exception:
    """A bug: one line and exit 1 (re-raised as is with REC_DEBUG=1 or -v, for the traceback)."""
    if os.environ.get("REC_DEBUG") or is_verbose():
        return e
    error_line(f"internal error: {type(e).__name__}: {e} (rerun with -v, or set REC_DEBUG=1, "
               "for the traceback)")
    return typer.Exit(1)


def preload(module: str) -> None:
    """Import `module` in a thread of its own while the stage reads its inputs (recommend's
    rank stage: its first users waited 0.11-0.16 s for scipy.sparse after reading them)."""
    import importlib
    import threading

    def load() -> None:
        try:  # any failure (an import lock's deadlock error): the scoring threads import it
            importlib.import_module(module)
        except BaseException:  # noqa: BLE001 (never a traceback from this thread)
            pass
    threading.Thread(target=load, daemon=True).start()
