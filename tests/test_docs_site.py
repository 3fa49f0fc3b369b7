"""The documentation site builds with ``mkdocs build --strict`` (mkdocs.yml, docs/) without a
warning, and its generated pages hold what they are generated from: the click commands, the
docstrings, the example notebooks, the configuration schema."""

from __future__ import annotations

import html
import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest

from bumphunt.cli import main as cli_main
from bumphunt.config import load_config, schema

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _text(path: Path) -> str:
    """The text of a generated page: tags stripped, entities decoded, white space collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", path.read_text(encoding="utf-8"), flags=re.S)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _collapsed(text: str) -> str:
    return " ".join(text.split())


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once: (folder, mkdocs' output, seconds)."""
    folder = tmp_path_factory.mktemp("site")
    # Material for MkDocs prints a banner about its successor on every build unless told not to
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    started = time.perf_counter()
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    seconds = time.perf_counter() - started
    output = build.stdout + build.stderr
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{output}"
    return folder, output, seconds


def test_builds_strictly_without_warnings(site):
    folder, output, _ = site
    assert "WARNING" not in output, output
    assert (folder / "index.html").is_file()


def _commands(command: click.Command, path: str):
    """(command path, command) of a command and every command below it."""
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, f"{path} {name}")


def _plain(text: str) -> str:
    """Text without white-space runs and Markdown's inline marks, to compare with a rendered page."""
    return " ".join(re.sub(r"[`*_]", "", text).split())


def test_cli_reference_shows_every_command(site):
    folder, _, _ = site
    page = (folder / "cli" / "index.html").read_text(encoding="utf-8")
    text = _plain(_text(folder / "cli" / "index.html"))
    blocks = re.findall(r"<pre>(.*?)</pre>", page, re.S)
    code_blocks = [_plain(html.unescape(re.sub(r"<[^>]+>", "", block))) for block in blocks]
    stages = {"simulate", "kinfit", "select", "shapes", "scan", "count", "exclusion", "run", "config"}
    assert stages <= set(cli_main.commands)
    for path, command in _commands(cli_main, "bumphunt"):
        # a section per command, with its usage line and its help
        assert f'id="{path.replace(" ", "-")}"' in page, f"no section for {path!r}"
        assert any(block.startswith(f"{path} [OPTIONS]") for block in code_blocks), f"no usage line for {path!r}"
        help_text = inspect.cleandoc(command.help or "")
        assert _plain(help_text.split("\n\n")[0]) in text, f"{path}: its help is not on the page"
        # click's \b paragraphs: an example paragraph is a code block, line by line
        for paragraph in help_text.split("\n\n"):
            lines = paragraph.splitlines()
            if len(lines) > 2 and lines[0] == "\b" and lines[1].rstrip().endswith(":"):
                first_example = _plain(lines[2])
                assert any(first_example in block for block in code_blocks), f"{path}: {lines[2]!r} not in a code block"
        # <output_dir> is shown, not taken for an HTML tag
        if "<output_dir>" in help_text:
            assert "&lt;output_dir&gt;" in page
    assert "\b" not in page


def test_api_reference_holds_the_docstrings(site):
    folder, _, _ = site
    page = (folder / "api" / "config" / "index.html").read_text(encoding="utf-8")
    assert 'id="bumphunt.config.load_config"' in page
    text = _text(folder / "api" / "config" / "index.html")
    docstring = inspect.getdoc(load_config)
    assert docstring.splitlines()[0] in text
    assert "YAML file; the bundled default when None." in text  # a parameter's description
    # Sphinx roles of the docstrings become code, linked where the target is documented
    for api_page in (folder / "api").glob("*/index.html"):
        assert not re.search(r":(func|class|mod|meth|data|attr):", _text(api_page)), api_page
    scan = (folder / "api" / "scan" / "index.html").read_text(encoding="utf-8")
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*href="[^"]*#bumphunt\.', scan)


def test_every_example_notebook_has_a_page(site):
    folder, _, _ = site
    notebooks = sorted((ROOT / "examples").glob("*.ipynb"))
    assert len(notebooks) >= 7
    for notebook in notebooks:
        page = folder / "examples" / notebook.stem / "index.html"
        assert page.is_file(), f"no page for {notebook.name}"
        assert (page.parent / notebook.name).is_file(), f"{notebook.name} is not offered for download"
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        title = next(
            line[2:].strip()
            for cell in cells
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
            if line.startswith("# ")
        )
        assert f"<title>{html.escape(title, quote=False)} - bumphunt</title>" in page.read_text(encoding="utf-8")


def test_configuration_reference_lists_every_schema_key(site):
    folder, _, _ = site
    text = _text(folder / "configuration" / "index.html")

    def keys(node: dict, prefix: str):
        for key, spec in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            yield path
            yield from keys(spec, path)
            yield from keys(spec.get("items", {}), f"{path}[]")

    listed = list(keys(schema(), ""))
    assert "beam.e_plus_energy" in listed and "systematics.sources[].constraint" in listed
    for key in listed:
        assert key in text, f"{key} is not in the configuration reference"


def test_rendered_tables_are_current():
    """Every table docs/render_tables.py renders is the one in the docs."""
    spec = importlib.util.spec_from_file_location("render_tables", DOCS / "render_tables.py")
    render_tables = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(render_tables)
    for name, marker, render in render_tables.TABLES:
        page = (DOCS / name).read_text(encoding="utf-8")
        begin, end = f"<!-- begin:{marker} -->", f"<!-- end:{marker} -->"
        assert f"{begin}\n{render()}\n{end}" in page, f"{name} ({marker}): run python docs/render_tables.py"
