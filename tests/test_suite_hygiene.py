"""The suite's own guard: a test runs in a fresh folder, and one that writes into the folder pytest was started from
(where a user may have just written ./submission with the README's first command) fails."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import conftest

PROBE = '''
from pathlib import Path

import conftest


def test_relative_paths_land_in_a_fresh_folder():
    assert not Path("submission").exists()  # the start folder's submission/ is not visible
    Path("submission").mkdir()
    (Path("submission") / "1.jpg").write_bytes(b"x")


def test_writing_the_start_folder_fails():
    (conftest.STARTED_IN / "submission" / "2.jpg").write_bytes(b"x")
'''


@pytest.mark.slow
def test_a_test_that_writes_the_start_folder_fails_and_others_do_not(tmp_path):
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(Path(conftest.__file__), suite / "conftest.py")
    (suite / "test_probe.py").write_text(PROBE)
    start = tmp_path / "start"
    (start / "submission").mkdir(parents=True)
    (start / "submission" / "1.jpg").write_bytes(b"the user's hand-in")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:benchmark", str(suite)], cwd=start,
                          capture_output=True, text=True, timeout=300)
    # both tests run to the end; the second fails at its teardown, naming what it wrote
    assert "2 passed, 1 error" in proc.stdout, proc.stdout[-3000:]
    assert "ERROR" in proc.stdout and "test_writing_the_start_folder_fails" in proc.stdout
    assert "changed the folder the suite was started from" in proc.stdout and "submission/2.jpg" in proc.stdout
    assert (start / "submission" / "1.jpg").read_bytes() == b"the user's hand-in"
