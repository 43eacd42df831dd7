"""``kafkalake schema ...``: inspect, check and register schemas in the registry folder.

Mounted by the main CLI (``app.add_typer(schema_app, name="schema")``). User errors are
:class:`~kafkalake.schema.SchemaError` (the main CLI prints ``error: <msg>``); an
incompatible schema prints every reason and exits 1, so CI can gate on ``check``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from kafkalake.config import get_settings
from kafkalake.schema.model import Compatibility, IncompatibleSchemaError, SchemaError
from kafkalake.schema.registry import Registry

schema_app = typer.Typer(
    help="The schema registry: schemas/<subject>/vN.avsc, global ids, compatibility checks.",
    no_args_is_help=True,
)

_DIR_KEY = "kafkalake.cli.schema.schemas_dir"


@schema_app.callback()
def schema_options(
    ctx: typer.Context,
    schemas_dir: Path | None = typer.Option(
        None,
        "--schemas-dir",
        help="Registry folder (default: KAFKALAKE_SCHEMAS_DIR, i.e. <home>/schemas).",
        file_okay=False,
    ),
) -> None:
    """Schema registry commands."""
    # ctx.meta is shared by the whole command chain without taking over ctx.obj,
    # which belongs to the main CLI.
    ctx.meta[_DIR_KEY] = schemas_dir


def _registry(ctx: typer.Context) -> Registry:
    folder = ctx.meta.get(_DIR_KEY) or get_settings().schemas_dir
    return Registry(folder)


def _read_schema_file(file: Path) -> tuple[str, str]:
    """(text, name for messages); ``-`` reads stdin so schemas can be piped in."""
    if str(file) == "-":
        return sys.stdin.read(), "<stdin>"
    try:
        return file.read_text(encoding="utf-8"), str(file)
    except FileNotFoundError:
        raise SchemaError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SchemaError(f"{file}: cannot read it as UTF-8 text: {exc}") from None


def _parse_version(value: str) -> int:
    text = value.strip().lower().lstrip("v")
    if not text.isdigit() or int(text) < 1:
        raise SchemaError(f"version {value!r} is not a version number like 1, v2 or 'latest'")
    return int(text)


@schema_app.command("list")
def list_subjects(ctx: typer.Context) -> None:
    """Every subject with its compatibility mode, versions and schema ids."""
    registry = _registry(ctx)
    subjects = registry.subjects()
    if not subjects:
        typer.echo(f"no subjects registered in {registry.path}")
        return
    for subject in subjects:
        versions = ", ".join(
            f"v{v} (id {registry.get(subject, v).schema_id})" for v in registry.versions(subject)
        )
        typer.echo(f"{subject}\t{registry.compatibility(subject).value}\t{versions}")


@schema_app.command("show")
def show(
    ctx: typer.Context,
    subject: str = typer.Argument(..., help="Subject name, e.g. fridge."),
    version: str = typer.Argument("latest", help="Version number or 'latest'."),
) -> None:
    """Print a version's schema to stdout (its id and fingerprint go to stderr)."""
    registry = _registry(ctx)
    chosen = registry.latest(subject) if version == "latest" else registry.get(subject, _parse_version(version))
    typer.echo(
        f"# {chosen.label}, schema id {chosen.schema_id}, {chosen.fingerprint}, "
        f"{registry.compatibility(subject).value}",
        err=True,
    )
    typer.echo(chosen.schema_json, nl=False)


@schema_app.command("check")
def check(
    ctx: typer.Context,
    subject: str | None = typer.Argument(None, help="Subject the schema would join."),
    file: Path | None = typer.Argument(None, help="The .avsc to check ('-' for stdin)."),
    check_all: bool = typer.Option(False, "--all", help="Validate the whole registry folder instead."),
) -> None:
    """Exit 0 if FILE may become SUBJECT's next version, 1 (with reasons) if not.

    With --all: every version parses, is unchanged, has a unique id and is compatible
    with its predecessors under its subject's mode.
    """
    registry = _registry(ctx)
    if check_all:
        if subject is not None or file is not None:
            raise SchemaError("use either `check --all` or `check SUBJECT FILE`, not both")
        problems = registry.check_all()
        if problems:
            typer.echo(f"{registry.path}: {len(problems)} problem(s)")
            for problem in problems:
                typer.echo(f"  - {problem}")
            raise typer.Exit(1)
        typer.echo(
            f"{registry.path}: ok ({len(registry.subjects())} subject(s), {len(registry.all_versions())} version(s))"
        )
        return
    if subject is None or file is None:
        raise SchemaError("give SUBJECT and FILE (e.g. `check fridge new.avsc`), or --all")
    text, source = _read_schema_file(file)
    report = registry.check(subject, text, source=source)
    for line in report.lines():
        typer.echo(line)
    if not report.compatible:
        raise typer.Exit(1)


@schema_app.command("register")
def register(
    ctx: typer.Context,
    subject: str = typer.Argument(..., help="Subject to add a version to (created if new)."),
    file: Path = typer.Argument(..., help="The .avsc to register ('-' for stdin)."),
) -> None:
    """Check FILE, then store it as SUBJECT's next version with a new global schema id."""
    registry = _registry(ctx)
    text, source = _read_schema_file(file)
    before = {v.schema_id for v in registry.all_versions()}
    try:
        version = registry.register(subject, text, source=source)
    except IncompatibleSchemaError as exc:
        for line in exc.report.lines():
            typer.echo(line)
        typer.echo("nothing was written")
        raise typer.Exit(1) from None
    if version.schema_id in before:
        typer.echo(f"{version.label} (schema id {version.schema_id}) is already registered; nothing changed")
    else:
        typer.echo(f"registered {version.label} with schema id {version.schema_id}")


@schema_app.command("diff")
def diff(
    ctx: typer.Context,
    subject: str = typer.Argument(...),
    v1: str = typer.Argument(..., help="Older version."),
    v2: str = typer.Argument(..., help="Newer version."),
) -> None:
    """What changed between two versions, one line per change (+ added, - removed, ~ changed)."""
    registry = _registry(ctx)
    old, new = _parse_version(v1), _parse_version(v2)
    lines = registry.diff(subject, old, new)
    if not lines:
        typer.echo(f"{subject} v{old} and v{new} are the same schema")
    for line in lines:
        typer.echo(line)


@schema_app.command("compatibility")
def compatibility(
    ctx: typer.Context,
    subject: str = typer.Argument(...),
    mode: str | None = typer.Argument(
        None, help="Set the mode: " + ", ".join(m.value for m in Compatibility) + " (omit to show it)."
    ),
) -> None:
    """Show or set a subject's compatibility mode (subject.yaml)."""
    registry = _registry(ctx)
    if mode is None:
        typer.echo(f"{subject}: {registry.compatibility(subject).value}")
        return
    chosen = registry.set_compatibility(subject, Compatibility.parse(mode, where="compatibility"))
    typer.echo(f"{subject}: compatibility set to {chosen.value}")
