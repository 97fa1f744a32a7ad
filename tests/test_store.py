"""initlab.store: files written whole, with the mode a plain open() gives."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from initlab import store


@pytest.fixture
def umask():
    """Set the process umask for a test, then put the old one back."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask", [0o002, 0o022, 0o077])
def test_files_and_directories_get_the_mode_open_and_mkdir_give(mask, umask, tmp_path):
    umask(mask)
    reference = tmp_path / "plain.txt"
    with open(reference, "w") as fh:  # the independent reference: what open() does
        fh.write("x")
    (tmp_path / "plain_dir").mkdir()
    target = tmp_path / "new" / "sub" / "summary.json"
    store.write_json(target, {"a": 1})
    assert _mode(target) == _mode(reference) == 0o666 & ~mask
    assert _mode(target.parent) == _mode(tmp_path / "plain_dir") == 0o777 & ~mask
    assert _mode(target.parent.parent) == 0o777 & ~mask


def test_writer_output_gets_the_mode_too(umask, tmp_path):
    umask(0o002)
    store.write_with(tmp_path / "t.csv", lambda tmp: Path(tmp).write_text("a\n1\n"))
    assert _mode(tmp_path / "t.csv") == 0o664


@pytest.mark.parametrize("error", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_write_leaves_the_old_file_and_no_temp(error, tmp_path):
    target = tmp_path / "summary.json"
    store.write_json(target, {"old": True})
    with pytest.raises(error):
        with store.atomic_path(target) as tmp:
            tmp.write_text('{"new": tr')  # half-written
            raise error()
    assert json.loads(target.read_text()) == {"old": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with store.atomic_path(tmp_path / "layers.csv") as tmp:
            tmp.write_text("init,activation\n")
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_cannot_take_files_is_named_not_its_temp_file(tmp_path):
    """The error names the file asked for (the temp file is an implementation detail)."""
    from initlab import store

    blocker = tmp_path / "job"
    blocker.write_text("a file where the job's directory should be\n")
    with pytest.raises(OSError) as info:
        store.write_json(blocker / "summary.json", {"status": "ok"})
    assert info.value.filename == str(blocker / "summary.json")
    assert ".tmp" not in str(info.value)
