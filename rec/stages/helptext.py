"""`rec COMMAND --help` in few lines: every option on one line where its words allow.

typer's help puts "[default: X]" on a line of its own whenever the help text wraps, names
each type in a wide column ("<int range>", "<bool>" beside every flag, "<list[str]>" beside
an argument) that squeezes the help text into more lines, and gives --help a panel of its
own. `compact` keeps every word and changes only the layout: the range and the default go
at the end of the help text (same "[x>=1]", "[default: X]"), types are shown as INT, FLOAT,
TEXT (a flag shows none; an argument taking several values TEXT...), and --help joins the
last panel when there is no "Options" panel for it. `rec --help` (the group) is laid out the
same way.
"""

from __future__ import annotations

from typing import get_args

METAVARS = {int: "INT", float: "FLOAT", str: "TEXT"}


def default_text(param) -> str | None:
    """The default as typer shows it ("[default: X]"), or None when it shows none."""
    default = param.default
    if param.show_default is False or callable(default):
        return None
    if getattr(param, "is_flag", False):
        if param.secondary_opts:  # --crosses/--no-crosses: the name of the default side
            return (param.opts if default else param.secondary_opts)[0].lstrip("-")
        return None  # a plain flag is off unless given
    if default is None or default == "" or default == () or default == []:
        return None
    return str(default)


def range_text(param) -> str | None:
    """typer's "x>=1", "0<=x<=0.9" for an option with a range (typer >= 0.29 keeps it in
    the option's min and max for --help alone), else None."""
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if low is None and high is None:
        return None
    if low is None:
        return f"x<={high}"
    return f"x>={low}" if high is None else f"{low}<=x<={high}"


def metavar(param) -> str | None:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    annotation = (get_args(annotation) or [annotation])[0]  # List[str] -> str
    return "" if getattr(param, "is_flag", False) else METAVARS.get(annotation)


def compact(command, ctx) -> None:
    """Rewrite the options of `command` (typer's) for a compact --help, in place, once."""
    if getattr(command, "_compact_help", False):
        return
    command._compact_help = True
    params = command.get_params(ctx)
    for param in params:
        if param.param_type_name == "argument" and metavar(param):
            # typer shows an argument's Python type ("<list[str]>") whatever its metavar
            shown = metavar(param) + ("..." if param.nargs != 1 else "")
            param.display_type_rich = lambda ctx, shown=shown: shown
        if param.param_type_name == "argument" and param.required:
            # typer's usage line braces a required argument ("{MOVIE}..."), read as a set of
            # choices: shown bare (MOVIE...), as click and man pages write one
            bare = (param.metavar or param.name.upper()) + ("..." if param.nargs != 1 else "")
            param.get_usage_pieces = lambda ctx, bare=bare: [bare]
        if param.param_type_name != "option":
            continue
        notes = [range_text(param), default_text(param)]
        if notes[1] is not None:
            notes[1] = f"default: {notes[1]}"
            param.show_default = False
        if notes[0] is not None:
            param.min = param.max = None  # typer's type column would show it again
        # "\[": the help is rich markup (cli.plain_text escapes the rest the same way)
        param.help = " ".join([param.help or "", *(f"\\[{n}]" for n in notes if n)]).strip()
        if param.metavar is None and metavar(param) is not None:
            param.metavar = metavar(param)
    panels = [getattr(p, "rich_help_panel", None) for p in command.params
              if p.param_type_name == "option"]
    help_option = command.get_help_option(ctx)
    if help_option is not None and panels and all(panels):  # else --help is in "Options"
        help_option.rich_help_panel = panels[-1]
