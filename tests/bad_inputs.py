"""The bad-input table: every wrong input a user can make that bumphunt answers for.

Each case names the input, what bumphunt does, and the exact message (a ``str.format``
template: ``{path}`` and the like are filled in by the test). The test that provokes a case
checks its message with :func:`message`; tests/test_bad_inputs.py checks that every case is
provoked by some test and that docs/bad-input.md shows this table
(``python docs/render_tables.py`` renders it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class BadInput:
    input: str  # what the user gave
    response: str  # what bumphunt does
    message: str  # the exact message, a str.format template


BAD_INPUTS: dict[str, BadInput] = {}


def case(key: str, input: str, response: str, message: str) -> None:
    """Add a case to the table (in the order the table shows)."""
    if key in BAD_INPUTS:
        raise ValueError(f"bad-input case {key!r} defined twice")
    BAD_INPUTS[key] = BadInput(input, response, message)


def message(key: str, **fields) -> str:
    """The exact message of case ``key`` with its fields filled in."""
    return BAD_INPUTS[key].message.format(**fields)


def pattern(key: str, **fields) -> str:
    """:func:`message` as a regular expression matching the whole message (for pytest.raises)."""
    return f"^{re.escape(message(key, **fields))}$"


def table_markdown() -> str:
    """The table for docs/bad-input.md."""
    lines = ["| input | what bumphunt does | message |", "| --- | --- | --- |"]
    for entry in BAD_INPUTS.values():
        shown = entry.message.replace("|", "\\|")
        lines.append(f"| {entry.input} | {entry.response} | `{shown}` |")
    return "\n".join(lines)


# -- statistics --------------------------------------------------------------------------

# -- configuration and command line -----------------------------------------------------

# -- files ----------------------------------------------------------------------------------

# -- lost or stale results --------------------------------------------------------------
