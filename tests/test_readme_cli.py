"""The README's summary of ``python -m minihttp`` lists every option of its ``--help``.

Options are added by several people at once; this keeps the summary from falling behind.
"""

from __future__ import annotations

import re
from pathlib import Path

from minihttp import cli

README = Path(__file__).resolve().parent.parent / "README.md"


def summary() -> str:
    """The first code block after the heading of the file server's section."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Serving files: `python -m minihttp`"):]
    m = re.search(r"```\n(python -m minihttp \[port\].*?)```", section, re.S)
    assert m, "no summary block in the README's file server section"
    return m.group(1)


def test_every_option_is_in_the_summary() -> None:
    block = summary()
    options = [opt for action in cli.build_parser()._actions for opt in action.option_strings]
    assert "--graceful-timeout" in options and "--version" in options  # the parser is read
    missing = [opt for opt in options
               if not re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", block)]
    assert not missing, f"README's CLI summary lacks {missing}"
