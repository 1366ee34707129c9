"""The ``simsip`` command: thin typer commands, each the twin of one public Python function.

Every command parses its arguments, calls the library function that does the work, prints the
result, and maps a user mistake to exit code 2 with a located message (never a traceback). All
logic lives in the library, so whatever a command does, a notebook can do with the same call:
:data:`TWINS` lists, for every command, the function(s) it calls (``module:function``; the first is
*the* twin, the others are what the command also calls — the variants path of ``run``, a writer)::

    simsip run CONFIG           simsip.simulate(simsip.load_config(CONFIG, ...), out=...)
    simsip sweep SPEC           simsip.run_sweep(SPEC, out=...)   # + simsip.write_sweep_report

One module per command group: :mod:`~simsip.cli.run` (run, check, schema),
:mod:`~simsip.cli.sweep` (sweep, plan), :mod:`~simsip.cli.report`, :mod:`~simsip.cli.trace`,
:mod:`~simsip.cli.models`, :mod:`~simsip.cli.lab`, :mod:`~simsip.cli.validate` (calibrate,
validate, validation-doc). Commands import the library when they run, so ``simsip --help`` is quick.
"""

from __future__ import annotations

import typer

from simsip.cli import lab, models, report, run, sweep, trace, validate
from simsip.cli._output import console

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Predict SIP registration loss across registrar HA failover.")

_about = typer.Typer()


@_about.command()
def version() -> None:
    """Print the simsip version."""
    from simsip._version import __version__

    console.print(__version__)


# the order here is the order of `simsip --help`
app.add_typer(run.app)  # run, schema, check
app.add_typer(sweep.app)  # sweep, plan
app.add_typer(report.app)  # report
app.add_typer(_about)  # version
app.add_typer(trace.app, name="trace")
app.add_typer(models.app, name="models")
app.add_typer(lab.app, name="lab", help="The real lab: Kamailio + keepalived + SIPp + tshark in network namespaces.")
app.add_typer(validate.app)  # calibrate, validate, validation-doc

#: every command (as typed after ``simsip``) -> the Python function(s) it calls, ``module:function``
TWINS: dict[str, tuple[str, ...]] = {
    **run.TWINS,
    **sweep.TWINS,
    **report.TWINS,
    "version": ("simsip:__version__",),
    **trace.TWINS,
    **models.TWINS,
    **lab.TWINS,
    **validate.TWINS,
}


def main() -> None:
    app()


__all__ = ["TWINS", "app", "main"]
