"""The bad-input table (tests/bad_inputs.py) is complete: every case provoked by a test, and
the docs show the current table."""

import re
from pathlib import Path

from .bad_inputs import BAD_INPUTS, table_markdown

TESTS = Path(__file__).parent


def test_every_case_is_provoked_by_a_test():
    sources = "\n".join(p.read_text() for p in TESTS.glob("test_*.py") if p.name != "test_bad_inputs.py")
    used = set(re.findall(r"""(?:message|pattern)\(\s*["']([\w-]+)["']""", sources))
    assert set(BAD_INPUTS) <= used, f"cases no test provokes: {sorted(set(BAD_INPUTS) - used)}"
    assert used <= set(BAD_INPUTS), f"tests name cases the table lacks: {sorted(used - set(BAD_INPUTS))}"


def test_docs_show_the_table():
    doc = (TESTS.parent / "docs" / "bad-input.md").read_text()
    assert table_markdown() in doc, "run python docs/render_tables.py"
