"""The `rec` command: global options, then one subcommand per stage."""

from __future__ import annotations

import sys
from typing import Optional

import typer
from typer.core import TyperGroup

from rec import __version__
from rec.console import error_line, set_quiet
from rec.paths import Paths
from rec.stages import download, evaluate, preprocess, save_features, status, train
from rec.stages import ctr, ctr_predict, recommend


class RecGroup(TyperGroup):
    """Bad usage caught by the parser (a mistyped option, a value of the wrong type or out of
    range, an unknown command) ends like every other error: one `error: ...` line on stderr
    and exit 2, not a boxed, multi-line message."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True,
             **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
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
    help="Recommender toolbox on PaddlePaddle: MovieLens to explained recommendations and a CTR ranker.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version_text() -> str:
    from rec.build_info import paddle_devices

    return f"rec {__version__}\n{paddle_devices()}"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(_version_text())
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    data_dir: Optional[str] = typer.Option(None, "--data-dir", envvar="REC_DATA_DIR",
                                           help="Raw data folder (default: data)."),
    output_dir: Optional[str] = typer.Option(None, "--output-dir", envvar="REC_OUTPUT_DIR",
                                             help="Artifacts folder (default: output)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress or logs on stderr."),
    version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    set_quiet(quiet)
    ctx.obj = Paths.from_env(data_dir, output_dir)


# Name, command, full help (`rec NAME --help`), one short line (`rec --help`), in this order.
COMMANDS = [
    ("download", download.command, download.HELP, download.SHORT),
    ("preprocess", preprocess.command, preprocess.HELP, preprocess.SHORT),
    ("train", train.command, train.HELP, train.SHORT),
    ("evaluate", evaluate.command, evaluate.HELP, evaluate.SHORT),
    ("save-features", save_features.command, save_features.HELP, save_features.SHORT),
    ("ctr-train", ctr.command, ctr.HELP, ctr.SHORT),
    ("ctr-predict", ctr_predict.command, ctr_predict.HELP, ctr_predict.SHORT),
    ("status", status.command, status.HELP, status.SHORT),
    ("recommend", recommend.recommend_command, recommend.HELP, recommend.SHORT),
    ("similar", recommend.similar_command, recommend.SIMILAR_HELP, recommend.SIMILAR_SHORT),
]
for name, function, full_help, one_line in COMMANDS:
    app.command(name, help=full_help, short_help=one_line)(function)


def main() -> None:
    app()
