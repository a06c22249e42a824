"""The permed command line: parse, call the library, format. No modelling here."""

from __future__ import annotations

import sys
import warnings
from typing import Any

import typer
from rich.text import Text

from permed import __version__
from permed.cli import (
    bench,
    datasets,
    demo,
    ingest,
    privacy,
    recalibrate,
    serve,
    study,
    train,
    use,
)
from permed.cli._console import err
from permed.exceptions import PermedError
from permed.ingest import ReadWarning
from permed.privacy import set_user

__all__ = ["app", "main"]

app = typer.Typer(
    name="permed",
    help="Personalized medicine: diagnose, risk and treat models you can validate, explain, "
    "audit and serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.command("demo")(demo.demo)
app.add_typer(datasets.app, name="datasets")
app.command("init")(study.init)
app.command("validate")(study.validate_command)
app.command("train")(train.train)
app.command("predict")(use.predict)
app.command("evaluate")(use.evaluate)
app.command("recalibrate")(recalibrate.recalibrate)
app.command("report")(use.report)
app.command("deidentify")(privacy.deidentify)
app.add_typer(privacy.keys_app, name="keys")
app.add_typer(privacy.audit_app, name="audit")
app.command("serve")(serve.serve)
app.add_typer(serve.users_app, name="users")
app.add_typer(bench.app, name="bench")
app.add_typer(ingest.app, name="ingest")


@app.callback(invoke_without_command=True)
def _root(version: bool = typer.Option(False, "--version", help="Print the version."),
          user: str | None = typer.Option(
              None, "--user", help="Who is acting, for the audit trail (default: PERMED_USER "
              "or the OS user).")) -> None:
    set_user(user)
    if version:
        typer.echo(f"permed {__version__}")
        raise typer.Exit()


def _show_warning(message: Warning | str, category: type[Warning], *args: Any,
                  **kwargs: Any) -> None:
    """How a table was read (a thousands separator removed, a Windows-1252 file) is told as
    the other warnings are, not as Python's 'file:line: ReadWarning' with a source line."""
    if issubclass(category, ReadWarning):
        err.print(f"warning: {message}", highlight=False, soft_wrap=True)
    else:
        _python_show_warning(message, category, *args, **kwargs)


_python_show_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    """Entry point: user errors print one clear message and exit 1 (a usage error: the usage
    line too, and 2), never a traceback."""
    warnings.showwarning = _show_warning
    try:
        # Without standalone mode click returns typer.Exit's code instead of exiting.
        code = app(args=argv, prog_name="permed", standalone_mode=False)
    except PermedError as exc:
        err.print(Text.assemble(("error:", "bold red"), f" {exc}"), highlight=False, soft_wrap=True)
        return 1
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # a usage error: unknown option, missing argument
        show = getattr(exc, "show", None)  # click's usage line and the hint to --help
        if show is not None:
            show()
        else:
            err.print(f"error: {exc.format_message()}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        err.print("interrupted: nothing was written", highlight=False)
        return 130
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(main())
