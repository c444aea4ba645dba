"""``python -m ochmr_lit.doctor``: one line per check of what a run needs, non-zero exit when one is broken.

Each line reads ``[ ok ]``, ``[info]`` or ``[FAIL]``, the check, what was found, and for a failure the fix.
``--body-model-dir DIR`` checks a real SMPL folder instead of the default (``$OCHMR_BODY_MODEL_DIR`` or
the synthetic model).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Callable
from dataclasses import dataclass

from ochmr_lit.errors import MissingFileError, OchmrError, OneLineArgumentParser, report_user_error

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@dataclass
class Check:
    name: str
    status: str  # ok | info | fail
    detail: str
    fix: str = ""

    def line(self) -> str:
        detail = " ".join(self.detail.split())  # one line, whatever the message looked like
        tag = {"ok": "[ ok ]", "info": "[info]", "fail": "[FAIL]"}[self.status]
        fix = f"  -> fix: {self.fix}" if self.status == "fail" and self.fix else ""
        return f"{tag} {self.name}: {detail}{fix}"


def check_python() -> Check:
    ok = sys.version_info[:2] == (3, 11)
    return Check("python", "ok" if ok else "fail", platform.python_version(),
                 "use Python 3.11 (make PYTHON=python3.11 ...)")


def check_torch() -> Check:
    import torch
    import torchvision
    from torchvision.ops import nms

    nms(torch.tensor([[0.0, 0.0, 1.0, 1.0]]), torch.tensor([1.0]), 0.5)
    cuda = (f"CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPU(s)" if torch.cuda.is_available()
            else "no GPU visible (CPU training; trainer=cpu or ddp_cpu)")
    return Check("torch", "ok", f"torch {torch.__version__}, torchvision {torchvision.__version__} (ops load); {cuda}")


def check_cpu() -> Check:
    from ochmr_lit.hardware import describe_cpu

    return Check("CPU", "info", describe_cpu())


def check_body_model(model_dir: str | None) -> list[Check]:
    import torch

    from ochmr_lit.body import BodyModel, resolve_body_model_dir

    try:
        folder = resolve_body_model_dir(model_dir)
    except (FileNotFoundError, ValueError) as error:
        return [Check("body model", "fail", str(error), "point paths.body_model_dir / OCHMR_BODY_MODEL_DIR at a "
                      "folder with the listed files, or unset it to use the synthetic model")]
    kind = "synthetic SMPL-format model" if model_dir is None else "user folder"
    genders = [g for g in ("NEUTRAL", "MALE", "FEMALE") if any(folder.glob(f"SMPL_{g}.*"))]
    checks = [Check("body model", "ok", f"{kind} at {folder}; genders: {', '.join(g.lower() for g in genders)}")]
    try:
        body = BodyModel(model_dir)
        out = body(torch.eye(3).expand(1, 24, 3, 3).contiguous(), torch.zeros(1, 10))
        checks.append(Check("regressors", "ok", f"SMPL joints {tuple(out.joints.shape[1:])}, H36M "
                            f"{tuple(out.joints_h36m.shape[1:])}, extra {tuple(out.joints_extra.shape[1:])}, "
                            f"vertices {tuple(out.vertices.shape[1:])}"))
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as error:
        checks.append(Check("regressors", "fail", str(error), "complete the body model folder (see README)"))
    return checks


def check_rendering() -> Check:
    try:
        import moderngl

        ctx = moderngl.create_standalone_context(backend="egl")
        renderer = ctx.info.get("GL_RENDERER", "?")
        ctx.release()
        return Check("headless rendering", "ok", f"moderngl EGL context ({renderer})")
    except Exception as error:  # noqa: BLE001 - any EGL failure is reported, not raised
        return Check("headless rendering", "fail", f"no EGL context: {error}",
                     "install an EGL driver (e.g. Debian: libegl1 libgl1-mesa-dri) for SynthCrowd and overlays")


def check_wandb() -> Check:
    mode = os.environ.get("WANDB_MODE")
    if mode:
        return Check("W&B", "ok", f"WANDB_MODE={mode}")
    if os.environ.get("WANDB_API_KEY"):
        return Check("W&B", "ok", "API key set; loggers are offline unless logger.wandb.offline=false")
    return Check("W&B", "info", "no WANDB_MODE or API key: runs log offline (sync later with `wandb sync`)")


def check_data_roots() -> list[Check]:
    from ochmr_lit.paths import cache_dir

    checks = []
    cache = cache_dir()
    probe = cache / ".doctor_write_test"
    try:
        probe.write_text("ok")
        probe.unlink()
        checks.append(Check("cache", "ok", f"{cache} is writable (synthetic body model, SynthCrowd)"))
    except OSError as error:
        checks.append(Check("cache", "fail", f"{cache}: {error}", "set OCHMR_CACHE to a writable folder"))
    synth = sorted(p.name for p in (cache / "synthcrowd").glob("*") if p.is_dir())
    checks.append(Check("SynthCrowd", "info", f"generated: {', '.join(synth)}" if synth
                        else "not generated yet (the first run generates it)"))
    data_root = os.environ.get("OCHMR_DATA")
    if data_root:
        status = "ok" if os.path.isdir(data_root) else "fail"
        checks.append(Check("data root", status, f"OCHMR_DATA={data_root}", "point OCHMR_DATA at an existing folder"))
    else:
        checks.append(Check("data root", "info", "OCHMR_DATA not set: real datasets need paths.data_root"))
    return checks


def run_checks(body_model_dir: str | None) -> list[Check]:
    checks: list[Check] = []
    steps: list[Callable[[], Check | list[Check]]] = [
        check_python, check_torch, check_cpu, lambda: check_body_model(body_model_dir), check_rendering, check_wandb,
        check_data_roots,
    ]
    for step in steps:
        try:
            result = step()
        except Exception as error:  # noqa: BLE001 - a crashing check is itself a failure to report
            result = Check(getattr(step, "__name__", "check"), "fail", f"{type(error).__name__}: {error}",
                           "see the message; reinstall with `make clean-venv test` if a package is broken")
        checks.extend(result if isinstance(result, list) else [result])
    return checks


def body_model_folder(argument: str | None) -> str | None:
    """The folder to check: ``--body-model-dir`` (which must exist: a missing one is a mistyped argument, not a
    finding), else ``$OCHMR_BODY_MODEL_DIR`` (checked as found), else None for the synthetic model."""
    if argument is None:
        return os.environ.get("OCHMR_BODY_MODEL_DIR")
    if not os.path.isdir(argument):
        raise MissingFileError(f"--body-model-dir {argument}: no such folder; pass the folder holding the SMPL "
                               "model files (SMPL_NEUTRAL.pkl, ...), or leave the option out to check the "
                               "synthetic model")
    return argument


def run_doctor(argv: list[str] | None) -> int:
    """Print every check's line and the tally; 1 when a check failed, else 0."""
    parser = OneLineArgumentParser(prog="python -m ochmr_lit.doctor", description=__doc__.splitlines()[0])
    parser.add_argument("--body-model-dir", default=None,
                        help="SMPL folder to check (default: $OCHMR_BODY_MODEL_DIR, else the synthetic model)")
    args = parser.parse_args(argv)
    checks = run_checks(body_model_folder(args.body_model_dir))
    for check in checks:
        print(check.line())
    failed = [c for c in checks if c.status == "fail"]
    print(f"{len(checks) - len(failed)} checks passed, {len(failed)} failed")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    """Run the checks; a mistake in the arguments prints one line ``error: ...`` and gives the exit status 2."""
    try:
        return run_doctor(argv)
    except OchmrError as error:
        return report_user_error(error)


if __name__ == "__main__":
    sys.exit(main())
