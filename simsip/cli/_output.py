"""What every command shares: the two consoles, and how a user mistake ends a command.

A command prints its results on stdout. A *user mistake* — a bad scenario file, a value out of
range, an unknown name, a directory that is not a run — is printed on stderr as
``error: <file>:<line>: <key>: <problem>`` (as located as the library's exception allows) and ends
the command with exit code 2, never with a traceback. User text (values, file names) is printed
verbatim, never interpreted as rich markup.
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def fail(problems: list[str] | str, code: int = 2) -> NoReturn:
    """Print each problem as ``error: ...`` on stderr and end the command with ``code``."""
    for p in [problems] if isinstance(problems, str) else problems:
        err_console.print("[bold red]error:[/] " + escape(str(p)), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def fmt(v) -> str:
    """A figure for a results table: 3 significant digits, thousands separated, ``–`` for none."""
    if v is None:
        return "–"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.3g}"


def interrupt_code(exc: BaseException) -> int:
    """The exit code of a command ended by Ctrl-C (130) or by SIGTERM/SIGHUP (128 + the signal)."""
    signum = getattr(exc, "signum", None)
    return 128 + int(signum) if isinstance(signum, int) else 130
