"""The doctor reports every check on one line and exits non-zero only when something required is broken."""

import subprocess
import sys

from conftest import REPO_ROOT

from ochmr_lit.doctor import main


def test_doctor_passes_on_this_machine_with_the_synthetic_model(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "[ ok ] body model: synthetic SMPL-format model" in out
    assert "genders: neutral, male, female" in out
    assert "[ ok ] headless rendering" in out
    assert "[info] CPU: " in out and "trainer=cpu trains in " in out
    assert "0 failed" in out.splitlines()[-1]


def test_doctor_fails_with_the_fix_for_a_wrong_body_model_folder(tmp_path, capsys):
    (tmp_path / "SMPL_NEUTRAL.pkl").write_bytes(b"not a pickle")
    code = subprocess.run([sys.executable, "-m", "ochmr_lit.doctor", "--body-model-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO_ROOT)
    assert code.returncode == 1
    line = next(ln for ln in code.stdout.splitlines() if ln.startswith("[FAIL]"))
    assert "body model" in line or "regressors" in line
    assert "fix:" in line
