"""Train: ``python -m ochmr_lit.fit experiment=<name> [key=value ...]`` (Hydra; see configs/fit.yaml).

Before Hydra runs, the command line is composed once with Hydra's compose API: an unknown experiment,
config group option or key then stops the command with one line that names it and lists what exists,
instead of Hydra's multi-line report (:func:`command_line_error`).
"""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import difflib  # noqa: E402
import inspect  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
from importlib import resources  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

CONFIG_MODULE = "ochmr_lit.configs"


def config_options(group: str) -> list[str]:
    """Names of the configs of a Hydra group (``experiment``, ``data``, ``model``, ...), sorted."""
    folder = resources.files(CONFIG_MODULE) / group
    if not folder.is_dir():
        return []
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def trainer_arguments() -> list[str]:
    """The arguments of ``lightning.Trainer``: every one may be set under ``trainer.`` on the command line."""
    import lightning

    return sorted(set(inspect.signature(lightning.Trainer.__init__).parameters) - {"self"})


def pass_trainer_arguments(argv: list[str]) -> list[str]:
    """``trainer.<any Trainer argument>=v`` set or added as written (``++``), as a Lightning user expects; other
    keys under ``trainer.`` (typos) are left to the check that names them with the closest Trainer arguments."""
    accepted = set(trainer_arguments())
    passed = []
    for arg in argv:
        match = re.match(r"^trainer\.([A-Za-z_]+)=", arg)
        passed.append(f"++{arg}" if match and match.group(1) in accepted else arg)
    return passed


def _unknown_key_message(key: str, override: str, cfg_without: DictConfig | None) -> str:
    parent, _, leaf = key.rpartition(".")
    known: list[str] = []
    if parent == "trainer":
        known = trainer_arguments()
    elif cfg_without is not None:
        node = OmegaConf.select(cfg_without, parent) if parent else cfg_without
        if isinstance(node, DictConfig):
            known = [str(k) for k in node.keys()]
    close = difflib.get_close_matches(leaf, known, n=3)
    hint = f"did you mean {', '.join(f'{parent}.{c}' if parent else c for c in close)}? " if close else ""
    where = f"{f'{parent!r}' if parent else 'the top level'} has {', '.join(known)}; " if known and not close else ""
    if parent == "trainer":
        return (f"unknown Trainer argument '{key}' in '{override}': {hint}every argument of lightning.Trainer can be "
                "set under trainer. (see its documentation)")
    return (f"unknown config key '{key}' in '{override}': {hint}{where}prefix the override with ++ to add "
            f"a new key (++{override.lstrip('+')})")


def command_line_error(config_name: str, overrides: list[str]) -> str | None:
    """Compose ``config_name`` with ``overrides`` as Hydra will; a one-line message for what fails, or None.

    Names an unknown experiment (or other group option) with the available ones, and an unknown key with
    the closest existing keys. Multirun sweeps and Hydra's own flags are left to Hydra.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException

    if any(o.startswith("-") for o in overrides) or GlobalHydra.instance().is_initialized():
        return None
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            compose(config_name=config_name, overrides=overrides)
        return None
    except MissingConfigException as error:
        group, _, name = (error.missing_cfg_file or "").rpartition("/")
        if group:
            if group == "experiment":
                return (f"unknown experiment '{name}' (experiment={name}); available experiments: "
                        f"{', '.join(config_options(group))} (ochmr_lit/configs/experiment/)")
            return (f"unknown {group} config '{name}' ({group}={name}); available: {', '.join(config_options(group))}"
                    f" (ochmr_lit/configs/{group}/); experiments: {', '.join(config_options('experiment'))}")
        return f"{str(error).splitlines()[0]} (config {config_name})"
    except HydraException as error:
        cause = error.__cause__ or error.__context__
        while cause is not None and not getattr(cause, "full_key", None):  # omegaconf's key errors carry it
            cause = cause.__cause__ or cause.__context__
        key = str(getattr(cause, "full_key", ""))
        override = next((o for o in overrides if key and (o.lstrip("+~").split("=")[0] + ".").startswith(key + ".")),
                        None)
        if override is None:
            return f"{str(error).splitlines()[0]} (config {config_name}; HYDRA_FULL_ERROR=1 shows the details)"
        rest = [o for o in overrides if o != override]
        try:
            with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
                without = compose(config_name=config_name, overrides=rest)
        except HydraException:
            without = None
        return _unknown_key_message(key, override, without)


def check_command_line(config_name: str, argv: list[str]) -> None:
    """Exit with status 2 and one line on stderr when the command line's config cannot be composed."""
    message = command_line_error(config_name, argv)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)


def resume_folder_override(argv: list[str]) -> list[str]:
    """``ckpt_path=last`` continues the run folder it resumes: Hydra is pointed at that folder (``hydra.run.dir``)
    instead of creating a new, timestamped one. Nothing changes when the command names its folder itself."""
    if "ckpt_path=last" not in argv or any(a.startswith(("hydra.run.dir=", "run_dir=", "-")) for a in argv):
        return []
    from hydra import compose, initialize_config_module

    from ochmr_lit.runner import find_resume_folder

    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        cfg = compose(config_name="fit", overrides=argv)
    try:
        folder = find_resume_folder(cfg.paths.output_dir, cfg.experiment_name)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return [f"hydra.run.dir={folder}"]


@hydra.main(version_base="1.3", config_path="configs", config_name="fit")
def main(cfg: DictConfig) -> None:
    from ochmr_lit.errors import user_errors
    from ochmr_lit.runner import run_fit

    with user_errors(cfg.run_dir):
        run_fit(cfg)


if __name__ == "__main__":
    sys.argv[1:] = pass_trainer_arguments(sys.argv[1:])
    check_command_line("fit", sys.argv[1:])
    sys.argv += resume_folder_override(sys.argv[1:])
    main()
