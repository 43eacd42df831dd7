"""kafkalake._files: atomic replaces and exclusive locks, with real files and real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from kafkalake._files import LockHeld, atomic_write, exclusive_lock, write_json_atomic


def test_atomic_write_replaces_whole_and_leaves_no_temp_file(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "state.json"
    write_json_atomic(target, {"b": 1, "a": [1, 2]})
    assert json.loads(target.read_text()) == {"a": [1, 2], "b": 1}
    atomic_write(target, "second\n")
    assert target.read_text() == "second\n"
    assert target.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in target.parent.iterdir()] == ["state.json"]


def test_a_failed_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    write_json_atomic(target, {"v": 1})
    with pytest.raises(TypeError):
        write_json_atomic(target, {"v": object()})  # not JSON: fails before anything is replaced
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def _hold_in_child(path: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time; from pathlib import Path; from kafkalake._files import exclusive_lock\n"
        f"path = Path({str(path)!r}); lock = exclusive_lock(path)\n"
        "if not path.is_dir(): lock.write_holder('4242\\n')\n"
        "print('held', flush=True); sys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    return child


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_exclusive_lock_is_refused_while_another_process_holds_it(tmp_path: Path, kind: str) -> None:
    path = tmp_path / ".lock" if kind == "file" else tmp_path
    child = _hold_in_child(path)
    try:
        with pytest.raises(LockHeld) as held:
            exclusive_lock(path, wait=False)
        if kind == "file":
            assert held.value.holder == "4242"
    finally:
        child.kill()  # like kill -9: the kernel releases the lock
        child.wait()
    with exclusive_lock(path, wait=False) as lock:
        assert lock.path == path
    assert sorted(p.name for p in tmp_path.iterdir()) == ([".lock"] if kind == "file" else [])
