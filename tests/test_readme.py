"""The README's code for users' models runs as written (so the README stays true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_the_readmes_failure_line_is_what_the_code_says():
    # The quoted line's words and layer exactly; its numbers (3 significant digits) to 1 %:
    # another CPU sums the float32 matmuls in another order, ~1e-5 relative after 100
    # layers, which moves a printed third digit only across a rounding boundary.
    from initlab.testing import assert_stable

    quoted = README.read_text().split("<!-- failure -->\n`", 1)[1].split("`", 1)[0]
    with pytest.raises(AssertionError) as info:
        assert_stable(init="xavier", activation="relu", depth=100, trials=4)
    said = str(info.value)
    number = r"[-+]?\d+(?:\.\d+)?(?:e[-+]\d+)?"
    assert re.sub(number, "#", quoted) == re.sub(number, "#", said)
    for a, b in zip(re.findall(number, quoted), re.findall(number, said), strict=True):
        assert float(a) == pytest.approx(float(b), rel=1e-2)


def test_the_readmes_gradient_and_training_guards_pass():
    namespace: dict = {}
    exec(compile(_block_after("The backward pass has its own guards"), "README.md", "exec"),
         namespace)
    tests = sorted(name for name in namespace if name.startswith("test_"))
    assert tests == ["test_gradients_hold_through_a_deep_relu_chain",
                     "test_my_tanh_chain_trains_on_digits",
                     "test_xavier_starves_relus_gradients"]
    for name in tests:
        namespace[name]()
