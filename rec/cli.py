"""The `rec` command: global options, then one subcommand per stage.

Commands load lazily (start-up time): `rec recommend ...` imports rec.stages.recommend and
no other stage; `rec --help` imports none (their one-line helps are in COMMANDS).
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import importlib
import os
import re
import sys
from typing import Iterator, Optional

import typer
from typer.core import TyperCommand, TyperGroup

from rec import __version__
from rec.console import check_streams, debug, error_line, set_quiet, set_verbose
from rec.results import writing_results
from rec.errors import EXIT_PIPE_CLOSED, ReaderGone, RecError
from rec.paths import Paths
from rec.stages.values import plain_params

# Name, "module:function" (its full help is the module's HELP, or the named attribute),
# one short line (`rec --help`), in this order.
COMMANDS = [
    ("download", "download:command", "Fetch and verify MovieLens, or make synthetic data."),
    ("preprocess", "preprocess:command", "Raw files -> .npy arrays and a saved split."),
    ("train", "train:command", "Train the two-tower recommender."),
    ("save-features", "save_features:command", "Save every user's and movie's vector."),
    ("ctr-train", "ctr_train:command", "The rank stage (default), or a Wide&Deep / DeepFM CTR model."),
    ("evaluate", "evaluate:command", "HR@10, NDCG@10, RMSE against baselines."),
    ("ctr-predict", "ctr_predict:command", "Click probabilities, one row per input line."),
    ("export", "export:command", "Trained networks as Paddle Inference / ONNX models."),
    ("status", "status:command", "Which stages ran, with what: fresh, stale, missing."),
    ("recommend", "recommend:recommend_command:HELP", "Explained top-N movies for users."),
    ("similar", "recommend:similar_command:SIMILAR_HELP", "Movies closest to a movie."),
    ("history", "history:command", "What users rated, best first or latest first."),
    ("pipeline", "pipeline:command", "Every stage in order, download to recommend."),
]
SHORT_HELP = {name: short for name, _, short in COMMANDS}


def plain_text(text: Optional[str]) -> Optional[str]:
    """Help text shown as written: square brackets are not rich markup ("[default: ...]")."""
    return None if text is None else text.replace("[", "\\[")


def load_command(name: str) -> TyperCommand:
    """The click command of `rec NAME`, built from its stage module (imported now)."""
    module, function, *help_attr = dict((n, t) for n, t, _ in COMMANDS)[name].split(":")
    stage = importlib.import_module(f"rec.stages.{module}")
    info = typer.models.CommandInfo(name, help=getattr(stage, (help_attr or ["HELP"])[0]),
                                    short_help=SHORT_HELP[name],
                                    callback=getattr(stage, function), cls=RecCommand)
    command = typer.main.get_command_from_info(info, pretty_exceptions_short=True,
                                               rich_markup_mode=app.rich_markup_mode)
    command.help, command.short_help = plain_text(command.help), plain_text(command.short_help)
    for param in command.params:
        param.help = plain_text(getattr(param, "help", None))
    return command


class RecCommand(TyperCommand):
    """A command whose options convert their values without pydantic (PlainValues), with
    a compact --help (rec.stages.helptext) that meets a full or closed stdout as results
    do (one line, or a quiet exit 141), not as click does (exit 1, or a traceback)."""

    def get_params(self, ctx):
        return plain_params(super().get_params(ctx))

    def shell_complete(self, ctx, incomplete: str):
        return one_line_helps(super().shell_complete(ctx, incomplete))

    def format_help(self, ctx, formatter) -> None:
        from rec.stages.helptext import compact

        compact(self, ctx)
        with help_output():
            super().format_help(ctx, formatter)


COMPLETION_HELP = 60  # characters of an option's help shown beside it by zsh and fish


def one_line_helps(items: list) -> list:
    """Completion candidates with their help cut to its first sentence, on one line: zsh
    and fish read one candidate a line, and typer wraps a help longer than the terminal
    (80 columns when COLUMNS is not exported) onto a line of its own."""
    for item in items:
        if item.help:
            text = re.split(r"\. (?=[A-Z])", " ".join(item.help.split()))[0].replace("\\[", "[")
            item.help = text if len(text) <= COMPLETION_HELP else \
                text[:COMPLETION_HELP - 1].rstrip() + "…"
    return items


@contextlib.contextmanager
def help_output() -> Iterator[None]:
    """Around printing --help (rich, to stdout): stdout faults as for results. rich meets a
    closed pipe with SystemExit(1) of its own (Console.on_broken_pipe): a closed pipe too."""
    with writing_results():
        try:
            yield
        except SystemExit:
            raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE)) from None


@contextlib.contextmanager
def interrupted_before_work() -> Iterator[None]:
    try:
        yield
    except KeyboardInterrupt:
        error_line(INTERRUPTED_AT_START)
        raise typer.Exit(130) from None


INTERRUPTED_AT_START = "interrupted; nothing was changed"


class RecGroup(TyperGroup):
    """Commands load on first use (`load_command`); listing them (`rec --help`, the command
    names completion offers) loads none. Completing a command's options loads that command.

    The global options (--data-dir, --output-dir, -q, -v) are taken after the command too:
    `rec recommend 42 -v` is `rec -v recommend 42` (`hoisted`).

    Bad usage caught by the parser (a mistyped option, a value of the wrong type or out of
    range, an unknown command) ends like every other error: one `error: ...` line on stderr
    and exit 2, not a boxed, multi-line message; a mistyped command gets the closest names."""

    _listing = False

    def get_params(self, ctx):
        return plain_params(super().get_params(ctx))

    def list_commands(self, ctx) -> list[str]:
        return [name for name, _, _ in COMMANDS]

    def get_command(self, ctx, cmd_name: str):
        if cmd_name not in SHORT_HELP:
            return None
        if self._listing:  # a name and a line are all that is shown
            return TyperCommand(cmd_name, help=SHORT_HELP[cmd_name],
                                short_help=SHORT_HELP[cmd_name])
        if cmd_name not in self.commands:
            self.commands[cmd_name] = load_command(cmd_name)
        return self.commands[cmd_name]

    def shell_complete(self, ctx, incomplete: str):
        self._listing = True  # completing a command name: names and short helps only
        try:
            return one_line_helps(super().shell_complete(ctx, incomplete))
        finally:
            self._listing = False

    def resolve_command(self, ctx, args):
        name = args[0] if args else ""
        if name and not name.startswith("-") and name not in SHORT_HELP \
                and not ctx.resilient_parsing:
            close = difflib.get_close_matches(name, list(SHORT_HELP), n=2)
            hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            ctx.fail(f"No such command {name!r}.{hint}")
        return super().resolve_command(ctx, args)

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, self.hoisted(ctx, list(args)))

    # Ctrl-C while the command line is read or the command's module loads (before the
    # command's own handler, rec.stages.stage): one line and 130, as during the work; typer
    # would exit 130 without a word, and `rec pipeline` relies on its stage saying it.
    def make_context(self, *args, **kwargs):
        with interrupted_before_work():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx):
        with interrupted_before_work():
            return super().invoke(ctx)

    def hoisted(self, ctx, args: list[str]) -> list[str]:
        """`args` with the global options given after the command moved before it. The
        command's own options are read with their values (`--like -v` keeps -v as the
        movie), an option the command declares itself stays its own, and nothing after
        `--` moves."""
        own = {name: p for p in self.get_params(ctx)
               if p.param_type_name == "option" and not p.is_eager
               for name in (*p.opts, *p.secondary_opts)}
        i = 0
        while i < len(args) and args[i].startswith("-") and args[i] != "--":
            option = own.get(args[i])
            i += 2 if option is not None and not option.is_flag else 1
        if i >= len(args) or args[i] not in SHORT_HELP:
            return args
        theirs = {name: p for p in self.get_command(ctx, args[i]).get_params(ctx)
                  if p.param_type_name == "option" for name in (*p.opts, *p.secondary_opts)}
        front, rest, j = args[:i], [args[i]], i + 1
        while j < len(args):
            word = args[j]
            if word == "--":
                rest += args[j:]
                break
            name = word.split("=", 1)[0]
            option = own.get(name) if name not in theirs else None
            takes_value = lambda p: p is not None and not p.is_flag and not p.count \
                and "=" not in word
            if option is not None:
                n = 2 if takes_value(option) else 1
                if j + n > len(args):  # `--output-dir` last, without its folder
                    if ctx.resilient_parsing:
                        rest.append(word)
                        break
                    ctx.fail(f"Option '{name}' requires an argument.")
                front += args[j:j + n]
            else:
                n = 1 + (theirs[name].nargs if takes_value(theirs.get(name)) else 0)
                rest += args[j:j + n]
            j += n
        return front + rest

    def format_help(self, ctx, formatter) -> None:
        from rec.stages.helptext import compact

        compact(self, ctx)
        self._listing = True
        try:
            with help_output():
                super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            check_streams()
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except RecError as e:
            error_line(str(e))
            sys.exit(e.exit_code)
        except ReaderGone:  # --help or --version into `| head -1`
            sys.stdout = open(os.devnull, "w")
            sys.exit(EXIT_PIPE_CLOSED)
        except typer.TyperException as e:  # click's usage and parameter errors
            if type(e).__name__ != "NoArgsIsHelpError":  # bare `rec` printed the help already
                ctx = getattr(e, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                error_line(" ".join(e.format_message().split()) + hint)
            sys.exit(e.exit_code)
        except typer.Abort:
            error_line("aborted")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    name="rec",
    cls=RecGroup,
    help="Recommender toolbox on PaddlePaddle: MovieLens to explained recommendations and a "
    "CTR ranker. --data-dir, --output-dir, -q and -v go before or after the command.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)


def _version_text() -> str:
    from rec.build_info import paddle_devices

    return f"rec {__version__}\n{paddle_devices()}"


def _show_version(value: bool) -> None:
    if value:
        with writing_results():
            sys.stdout.write(_version_text() + "\n")
            sys.stdout.flush()
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="REC_DATA_DIR",
                                           help="Raw data folder (default: data)."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", envvar="REC_OUTPUT_DIR",
                                             help="Artifacts folder (default: output)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or logs on stderr."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Debug lines on stderr; a bug shows its full traceback "
                                 "(as REC_DEBUG=1 does)."),
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    set_quiet(quiet)
    set_verbose(verbose)
    ctx.obj = Paths.from_env(data_dir, output_dir)
    debug(f"rec {__version__}, python {sys.version.split()[0]}, typer {typer.__version__}")


def main() -> None:
    from rec.process import interrupts
    from rec.storage import lock

    interrupts.signals_to_the_main_thread()

    if lock.is_worker():  # started by paddle.distributed.launch: stop when it does
        from rec.process.parent_death import worker_dies_with_launcher

        worker_dies_with_launcher()
    try:
        app(prog_name="rec")  # also under `python -m rec`: usage lines, completion's _REC_COMPLETE
    except KeyboardInterrupt:  # while typer builds the parser, before RecGroup runs
        error_line(INTERRUPTED_AT_START)
        sys.exit(130)
