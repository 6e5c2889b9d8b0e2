"""`eventcount models`: the shipped models."""

from __future__ import annotations

from eventcount.cli.common import app, models_app, out, run


@models_app.command("list")
def models_list() -> None:
    """Show the shipped models with their classes, training data and measured scores."""
    from rich.table import Table

    from eventcount.checkpoint import list_models

    table = Table(title="Shipped models (use with -m NAME)")
    for column in ("name", "classes", "trained on", "scores"):
        table.add_column(column)
    for info in run(list_models):
        scores = ", ".join(f"{k} {v}" for k, v in info["scores"].items())
        table.add_row(info["name"], ", ".join(info["classes"]), str(info["data"]), scores)
    out.print(table)


if __name__ == "__main__":
    app()
