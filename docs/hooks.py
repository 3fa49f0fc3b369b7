"""MkDocs hooks of the documentation site (``hooks:`` in mkdocs.yml).

* The example notebooks live in ``examples/``, outside ``docs_dir``: every ``examples/*.ipynb``
  is added to the site's files as ``examples/<name>.ipynb`` (read where it is, nothing copied),
  before mkdocs-jupyter, which renders them without executing them, looks at the files.
  ``mkdocs serve`` watches ``examples/``.
* The CLI reference (mkdocs-click) shows each command's help as Markdown, where click's
  ``\\b`` paragraphs, kept line by line in the terminal, would run together into one line.
  Here an ``Examples:`` paragraph becomes a code block, any other paragraph text escaped so
  that ``<output_dir>``, ``*`` or ``_`` show as written (not as an HTML tag or emphasis).
  Should mkdocs-click change so that this no longer applies, the build warns (and
  ``mkdocs build --strict`` fails).
"""

from __future__ import annotations

import html
import inspect
import logging
import re
import textwrap
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

log = logging.getLogger("mkdocs.hooks.bumphunt")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# click's marker of a paragraph it must not rewrap: a line holding only a backspace (\b)
NO_REWRAP = "\b"


@event_priority(100)  # before mkdocs-jupyter's on_files, which wraps the notebooks it finds
def on_files(files, config):
    # a File of the repository's top folder rather than File.generated: mkdocs-jupyter's wrapper
    # of a notebook reads it through src_dir, which a generated file does not have
    for notebook in sorted(EXAMPLES.glob("*.ipynb")):
        path = notebook.relative_to(ROOT).as_posix()
        files.append(File(path, str(ROOT), config.site_dir, config.use_directory_urls))
    return files


def on_serve(server, config, builder):
    server.watch(str(EXAMPLES))
    return server


def help_markdown(help_text: str) -> list[str]:
    """A click help text as Markdown lines: ``\\b`` paragraphs keep their lines, text is escaped."""
    lines = []
    for paragraph in re.split(r"\n[ \t]*\n", inspect.cleandoc(help_text)):
        rows = paragraph.splitlines()
        if rows and rows[0].strip() == NO_REWRAP:
            rows = rows[1:]
            title, body = (rows[0], rows[1:]) if rows else ("", [])
            if title.rstrip().endswith(":") and body and all(row[:1] in (" ", "\t") for row in body):
                # "Examples:" and the indented command lines below it
                lines += [f"**{_escape(title.strip())}**", "", "```text"]
                lines += [*textwrap.dedent("\n".join(body)).splitlines(), "```", ""]
                continue
        lines += [_escape(" ".join(row.strip() for row in rows)), ""]
    return lines


def _escape(text: str) -> str:
    """Plain text as Markdown that shows it as it is: no tags, emphasis or links (code spans stay)."""
    parts = re.split(r"(`[^`]+`)", text)  # odd parts: code spans, which Markdown shows as they are
    for i in range(0, len(parts), 2):
        parts[i] = re.sub(r"([\\*_\[\]])", r"\\\1", html.escape(parts[i], quote=False))
    return "".join(parts)


def _make_description(ctx, remove_ascii_art: bool = False):
    """mkdocs-click's description of a command, through :func:`help_markdown`."""
    help_text = ctx.command.help or ctx.command.short_help
    if help_text:
        yield from help_markdown(help_text)


def on_config(config):
    try:
        from mkdocs_click import _docs
    except ImportError:  # the CLI reference needs mkdocs-click anyway
        return config
    if not callable(getattr(_docs, "_make_description", None)):
        log.warning("mkdocs-click has no _make_description any more: the CLI help is rendered as it comes")
        return config
    _docs._make_description = _make_description
    return config
