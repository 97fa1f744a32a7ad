"""``initlab --help``: initlab's own groups and commands, short, whatever the working tree holds.

Hydra walks its whole search path to list config groups; initlab's search path holds
``conf/`` and the ``experiments/`` presets only (``hydra_plugins/initlab_searchpath``), so
a ``.venv`` or past runs in the working directory (or the repository) never reach it.
"""

from __future__ import annotations

import re

from conftest import REPO, ok, run_initlab

GROUPS = {"activation", "bias", "experiments", "experiments/fastai_chapter",
          "experiments/journey", "init", "model", "train"}


def test_help_lists_initlabs_groups_and_the_common_commands(tmp_path):
    # a working directory that looks like a used checkout: a past run's .hydra folder
    (tmp_path / "outputs" / "runs" / "x" / ".hydra").mkdir(parents=True)
    (tmp_path / "outputs" / "runs" / "x" / ".hydra" / "config.yaml").write_text("a: 1\n")
    text = ok(run_initlab(["--help"], tmp_path)).stdout
    lines = text.splitlines()
    assert len(lines) < 50, len(lines)
    start = lines.index("== Config groups (group=option) ==")
    section = lines[start + 1: lines.index("", start)]
    groups = {m.group(1) for line in section if (m := re.match(r"^([\w/]+): ", line))}
    assert groups - {"hydra/launcher"} == GROUPS, groups
    assert ".venv" not in text and "site-packages" not in text and ".hydra" not in text
    for command in ("initlab -m init=zero,normal,scaled,xavier,kaiming activation=none,tanh,relu",
                    "initlab experiments=journey", "initlab-report", "initlab-plot"):
        assert command in text, command
    options = {line.split(": ")[0]: line.split(": ")[1] for line in lines
               if line.split(": ")[0] in GROUPS}
    assert options["init"].split(", ") == sorted(p.stem for p in (REPO / "conf" / "init")
                                                  .glob("*.yaml"))


def test_presets_still_compose_through_their_own_source(tmp_path):
    """The presets' source shows Hydra only experiments/: a preset composes (the journey's
    steps from its own subfolder), and an unknown preset names the allowed ones."""
    text = ok(run_initlab(["experiments=relu_moments", "--cfg", "job"], tmp_path)).stdout
    assert "depth: 1" in text
    from initlab.validate import compose_overrides

    step = compose_overrides(["experiments=journey", "+experiments/journey=3_scaled_none"])
    assert step.init.name == "scaled" and step.activation.name == "none"
    bad = run_initlab(["experiments=nope"], tmp_path)
    assert bad.returncode == 2 and "journey" in bad.stderr and "Traceback" not in bad.stderr
