"""The README's examples that need no key run as written (issue 23, items 4 and 10): the
in-process path, the SDK transport against the simulator with no server and no key."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, re.DOTALL)


def test_the_in_process_example_without_a_key_runs_as_written(tmp_path: Path) -> None:
    (block,) = [b for b in python_blocks((ROOT / "README.md").read_text()) if
                "create_simulator_app" in b]  # fmt: skip
    script = tmp_path / "example.py"
    script.write_text(block)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=60, cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "You said: hello"
