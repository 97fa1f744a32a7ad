"""The README's code for users' models runs as written (so the README stays true)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def _block_after(heading: str) -> str:
    text = README.read_text()
    start = text.index(heading)
    found = re.search(r"```python\n(.*?)```", text[start:], re.S)
    assert found, f"no python block after {heading!r}"
    return found.group(1)


def test_the_readmes_model_regression_tests_pass():
    namespace: dict = {}
    exec(compile(_block_after("### Your own model in CI"), "README.md", "exec"), namespace)
    tests = sorted(name for name in namespace if name.startswith("test_"))
    assert tests == ["test_it_would_explode_under_unit_normal_weights",
                     "test_my_resnet_stays_stable_under_its_default_init"]
    for name in tests:
        namespace[name]()


def test_the_readmes_probe_example_runs_and_says_stable(capsys):
    code = _block_after("From Python, the probe is one call")
    exec(compile(code.replace("trials=16", "trials=4"), "README.md", "exec"), {})
    last = capsys.readouterr().out.rstrip().splitlines()[-1]
    assert last == ("{'verdict': 'stable', 'verdict_layer': None, 'verdict_counts': "
                    "{'exploded': 0, 'vanished': 0, 'stable': 4}}")
