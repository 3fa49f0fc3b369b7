"""Regenerate the tables in docs/ that are rendered from the code (run after changing them).

Usage: python docs/render_tables.py
The tests check that the docs hold the current tables (tests/test_docs_site.py checks every
one of ``TABLES``).
"""

import re
import sys
from pathlib import Path

from bumphunt.config import default_config_text, schema, schema_table_markdown
from bumphunt.kinfit import KINFIT_BRANCHES
from bumphunt.ntuple import branch_table_markdown
from bumphunt.samples import QUANTITIES

DOCS = Path(__file__).parent
sys.path.insert(0, str(DOCS.parent))
from tests.bad_inputs import table_markdown as bad_input_table  # noqa: E402

BOUNDS = (
    ("minimum", ">= {}"),
    ("exclusiveMinimum", "> {}"),
    ("maximum", "<= {}"),
    ("exclusiveMaximum", "< {}"),
    ("pattern", "matching `{}`"),
)


def value_description(spec: dict) -> str:
    """The type of a schema node with its bounds: ``integer >= 1``, ``non-empty array of ...``."""
    if "enum" in spec:
        return " or ".join(repr(value) for value in spec["enum"])
    if "anyOf" in spec:
        return ", or ".join(value_description(option) for option in spec["anyOf"])
    kind = spec.get("type", "any")
    size = []
    low, high = spec.get("minItems", spec.get("minLength")), spec.get("maxItems", spec.get("maxLength"))
    if low is not None and low == high:
        size.append(f"{low}-item" if kind == "array" else f"{low}-character")
    elif low == 1:
        size.append("non-empty")
    elif low is not None:
        size.append(f"at least {low}-item" if kind == "array" else f"at least {low}-character")
    bounds = [template.format(spec[key]) for key, template in BOUNDS if key in spec]
    if kind == "array" and "items" in spec:
        inner = "objects (rows below)" if spec["items"].get("type") == "object" else value_description(spec["items"])
        return " ".join([*size, "array of", inner])
    return " ".join([*size, kind, *bounds])


def list_items_markdown() -> str:
    """The items of every list in the configuration schema, which the table of keys shows as
    ``array``: their type, bounds and whether a key of an item is required."""
    lines = ["| key | type | required |", "| --- | --- | --- |"]

    def walk(node: dict, prefix: str) -> None:
        for key, spec in node.get("properties", {}).items():
            path = f"{prefix}.{key}" if prefix else key
            if spec.get("type") == "object":
                walk(spec, path)
            elif spec.get("type") == "array" and "items" in spec:
                items = spec["items"]
                if items.get("type") == "object":
                    required = set(items.get("required", ()))
                    for name, item in items.get("properties", {}).items():
                        answer = "yes" if name in required else "no"
                        lines.append(f"| `{path}[].{name}` | {value_description(item)} | {answer} |")
                else:
                    lines.append(f"| `{path}[]` | {value_description(items)} | |")

    walk(schema(), "")
    return "\n".join(lines)


def sample_quantities_markdown() -> str:
    """What a candidate-row sample's branch map may name (bumphunt.samples.QUANTITIES)."""
    as_code = r"`\g<1>`"  # basf2's bookkeeping names (__run__), as code rather than bold
    rows = [f"| `{name}` | {re.sub(r'(__[a-z]+__)', as_code, meaning)} |" for name, meaning in QUANTITIES.items()]
    return "\n".join(["| quantity | meaning |", "| --- | --- |", *rows])


TABLES = [
    ("configuration.md", "keys", schema_table_markdown),
    ("configuration.md", "list-items", list_items_markdown),
    ("configuration.md", "default-config", lambda: f"```yaml\n{default_config_text().rstrip()}\n```"),
    ("ntuple.md", "branches", branch_table_markdown),
    ("ntuple.md", "kinfit-branches", lambda: branch_table_markdown(KINFIT_BRANCHES)),
    ("bad-input.md", "bad-inputs", bad_input_table),
    ("own-analysis.md", "sample-quantities", sample_quantities_markdown),
]


def main() -> None:
    for name, marker, render in TABLES:
        path = DOCS / name
        text = path.read_text()
        begin, end = f"<!-- begin:{marker} -->", f"<!-- end:{marker} -->"
        head, rest = text.split(begin)
        _, tail = rest.split(end)
        path.write_text(f"{head}{begin}\n{render()}\n{end}{tail}")
        print(f"rendered {marker} into {path}")


if __name__ == "__main__":
    main()
