"""Regenerate the tables in docs/ that are rendered from the code (run after changing them).

Usage: python docs/render_tables.py
The tests check that the docs hold the current tables.
"""

import sys
from pathlib import Path

from bumphunt.config import default_config_text, schema_table_markdown
from bumphunt.kinfit import KINFIT_BRANCHES
from bumphunt.ntuple import branch_table_markdown

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS.parent))
from tests.bad_inputs import table_markdown as bad_input_table  # noqa: E402

TABLES = [
    ("configuration.md", "keys", schema_table_markdown),
    ("configuration.md", "default-config", lambda: f"```yaml\n{default_config_text().rstrip()}\n```"),
    ("ntuple.md", "branches", branch_table_markdown),
    ("ntuple.md", "kinfit-branches", lambda: branch_table_markdown(KINFIT_BRANCHES)),
    ("bad-input.md", "bad-inputs", bad_input_table),
]

for name, marker, render in TABLES:
    path = DOCS / name
    text = path.read_text()
    begin, end = f"<!-- begin:{marker} -->", f"<!-- end:{marker} -->"
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    path.write_text(f"{head}{begin}\n{render()}\n{end}{tail}")
    print(f"rendered {marker} into {path}")
