"""``simsip models list`` / ``simsip models show NAME``: the model library, printed.

The library (:mod:`simsip.models`) holds real products' defaults — phones, registrars, HA stacks,
databases — as profiles a scenario starts from, every value with its source, and complete small
deployments to ``extends:``. ``list`` prints what is there and how a scenario uses it; ``show``
prints every value of one profile with its meaning (the schema's field description) and its
source, then, dimmed, the schema defaults of the fields the profile leaves out.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from simsip.cli._output import console as _console
from simsip.cli._output import fail

app = typer.Typer(no_args_is_help=True, help="The model library: phone, registrar, HA profiles and deployments.")

#: command -> its Python twin(s) (``module:function``; see :data:`simsip.cli.TWINS`)
TWINS = {"models list": ("simsip.models:profiles",), "models show": ("simsip.models:profile_values",),
         "models assumptions": ("simsip.models:assumptions",)}


def models_list(console: Console | None = None) -> None:
    """Print the library: kind, name, what it is, how a scenario uses it."""
    from simsip.config.loader import models_dir
    from simsip.models import profiles

    console = console or _console
    table = Table(title=f"simsip model library ({models_dir()})", show_lines=False)
    table.add_column("kind")
    table.add_column("name", style="bold")
    table.add_column("what it is")
    table.add_column("use as")
    for p in profiles():
        table.add_row(p.kind, escape(p.name), escape(p.summary), escape(p.use_as))
    console.print(table)


def models_show(name: str, console: Console | None = None, defaults: bool = True) -> None:
    """Print one profile's values with their meaning and source. Raises ``KeyError`` for an unknown
    name (the message lists what exists)."""
    from simsip.models import find_profile, profile_values

    console = console or _console
    p = find_profile(name)
    table = Table(title=f"{p.kind}/{p.name} — {p.summary}", show_lines=True)
    table.add_column("key", style="bold", no_wrap=True)
    table.add_column("value")
    table.add_column("meaning")
    table.add_column("source" if p.kind != "deployments" else "")
    for v in profile_values(p, defaults=defaults):
        if v.default:
            table.add_row(f"[dim]{escape(v.path)}[/]", f"[dim]{escape(v.text)}[/]", f"[dim]{escape(v.meaning)}[/]",
                          "[dim]schema default (not set by this profile)[/]")
            continue
        if v.source and v.assumption:
            src = "[bold yellow]ASSUMPTION[/] " + escape(v.source)
        elif v.source:
            src = escape(v.source)
        else:
            src = "" if p.kind == "deployments" else "[red]no source[/]"
        table.add_row(escape(v.path), escape(v.text), escape(v.meaning), src)
    console.print(table)
    console.print(f"file: {p.path}")


def models_assumptions(kind: str | None = None, key: str | None = None, console: Console | None = None) -> None:
    """Print every profile value no vendor documents, with the path a sweep or ``--set`` varies."""
    from simsip.models import assumptions

    console = console or _console
    found = assumptions(kind, key)
    table = Table(title=f"assumed values in the model library ({len(found)})", show_lines=False)
    for c in ("profile", "key", "value", "sweep / --set path", "source"):
        table.add_column(c)
    for a in found:
        table.add_row(escape(a.profile), escape(a.value.path), escape(a.value.text), escape(a.sweep_path),
                      escape(a.value.source or ""))
    console.print(table)
    console.print("Sweep the phones' assumed refresh point: simsip sweep examples/sweeps/assumed-refresh-point.yaml")


@app.command("assumptions")
def models_assumptions_command(
    kind: str = typer.Option(None, help="Only this kind (phones, registrars, ha, databases, trunks, sbcs)."),
    key: str = typer.Option(None, help="Only values under this key (e.g. refresh)."),
) -> None:
    """List the profile values that no vendor documents (assumptions) and how to sweep them."""
    models_assumptions(kind, key)


@app.command("list")
def models_list_command() -> None:
    """List the profiles and deployments in models/."""
    models_list()


@app.command("show")
def models_show_command(name: str = typer.Argument(..., help="A profile name, or kind/name (e.g. phones/yealink).")) -> None:
    """Show a profile: each value, what it means, and its source."""
    try:
        models_show(name)
    except KeyError as exc:
        fail(str(exc.args[0]) if exc.args else f"unknown model {name!r}")
