"""scripts/gpu_check.sh: its commands compose, and without a GPU it says so and exits 2."""

import re
import subprocess
import sys

import pytest
import torch
from conftest import REPO_ROOT

from ochmr_lit.runner.command_line import command_line_error, pass_trainer_arguments

SCRIPT = REPO_ROOT / "scripts" / "gpu_check.sh"


def _small_overrides() -> list[str]:
    block = re.search(r"SMALL=\((.*?)\)", SCRIPT.read_text(), re.S).group(1)
    return block.split()


@pytest.mark.parametrize("extra", [["trainer=gpu"], ["trainer=ddp", "trainer.devices=2"]])
def test_the_scripts_fit_commands_compose(extra):
    overrides = pass_trainer_arguments([*_small_overrides(), *extra, "hydra.run.dir=/tmp/gpu_check"])
    assert command_line_error("fit", [o for o in overrides if not o.startswith("hydra.")]) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script would run its checks")
def test_without_a_gpu_it_says_so_and_exits_2():
    done = subprocess.run(["bash", str(SCRIPT), sys.executable], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "no CUDA device visible" in done.stderr
