"""workers/README.md stays true: it lists every setting the worker reads, and only those."""

from __future__ import annotations

import re
from pathlib import Path

from workers.settings import VARIABLES

README = Path(__file__).resolve().parents[2] / "workers" / "README.md"


def test_the_readme_lists_every_setting_and_no_other() -> None:
    documented = set(re.findall(r"AVROFLOW_[A-Z_]+[A-Z]", README.read_text(encoding="utf-8")))
    assert documented == set(VARIABLES.values())
