"""The command line of ``fit`` / ``evaluate`` (and the runs of a reproduction table) composed once with Hydra's
compose API before any work: an unknown experiment, config group option or key, and a new top-level key that
nothing reads, stop the command with one line that names it and lists what exists, instead of Hydra's multi-line
report (:func:`compose_command_line`); ``trainer.<any Trainer argument>`` is accepted as Lightning users expect
(:func:`pass_trainer_arguments`).
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from ochmr_lit.errors import existing_folder
from ochmr_lit.paths import folder_problem

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
    matches = [re.match(r"^trainer\.([A-Za-z_]+)=", arg) for arg in argv]
    accepted = set(trainer_arguments()) if any(matches) else set()  # Lightning is imported only when needed
    return [f"++{arg}" if match and match.group(1) in accepted else arg
            for arg, match in zip(argv, matches, strict=True)]


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
    if not parent:  # adding it with ++ would drop its value silently
        listing = f"; the top level has {', '.join(known)}" if known and not close else ""
        return f"unknown config key '{key}' in '{override}': {hint}no part of a run reads a new top-level key{listing}"
    return (f"unknown config key '{key}' in '{override}': {hint}{where}prefix the override with ++ to add "
            f"a new key (++{override.lstrip('+')})")


def _new_top_level_key(config_name: str, overrides: list[str], cfg: DictConfig) -> str | None:
    """A one-line message for an override that adds a top-level key (``+name=...``) the config does not have:
    no part of a run reads it, so its value would be dropped silently. None when there is none. ``cfg``: the
    config composed with ``overrides``. A single ``+`` always names a new key (Hydra refuses it on an existing
    one), so the config without it is ``cfg`` less that key; only ``++`` (set or add) needs the config composed
    without the override to tell a new key from an existing one."""
    from hydra import compose, initialize_config_module

    added = [o for o in overrides if re.match(r"^\+\+?[A-Za-z_][A-Za-z0-9_]*=", o)]
    if not added:
        return None
    if all(not o.startswith("++") for o in added):
        new_keys = {o[1:].split("=", 1)[0] for o in added} | {"hydra"}  # Hydra's own node, when composed with it
        known = OmegaConf.masked_copy(cfg, [str(k) for k in cfg if k not in new_keys])
        override = added[0]
        return _unknown_key_message(override[1:].split("=", 1)[0], override, known)
    with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
        known = compose(config_name=config_name, overrides=[o for o in overrides if o not in added])
    for override in added:
        key = override.lstrip("+").split("=", 1)[0]
        if key not in known:
            return _unknown_key_message(key, override, known)
    return None


def compose_command_line(config_name: str, overrides: list[str],
                         hydra_config: bool = False) -> tuple[DictConfig | None, str | None]:
    """Compose ``config_name`` with ``overrides`` as Hydra will, once: ``(config, None)``, or ``(None, message)``
    with a one-line message for what fails. ``hydra_config``: keep Hydra's own node (``hydra.run.dir``, ...) in
    the config. ``(None, None)`` for what is left to Hydra (multirun sweeps and Hydra's own flags).

    Names an unknown experiment (or other group option) with the available ones, an unknown key with the closest
    existing keys, and a top-level key added with ``+`` / ``++`` that no part of a run reads.
    """
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException, MissingConfigException

    if any(o.startswith("-") for o in overrides) or GlobalHydra.instance().is_initialized():
        return None, None
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=hydra_config)
    except MissingConfigException as error:
        group, _, name = (error.missing_cfg_file or "").rpartition("/")
        if group == "experiment":
            return None, (f"unknown experiment '{name}' (experiment={name}); available experiments: "
                          f"{', '.join(config_options(group))} (ochmr_lit/configs/experiment/)")
        if group:
            return None, (f"unknown {group} config '{name}' ({group}={name}); available: "
                          f"{', '.join(config_options(group))} (ochmr_lit/configs/{group}/); experiments: "
                          f"{', '.join(config_options('experiment'))}")
        return None, f"{str(error).splitlines()[0]} (config {config_name})"
    except HydraException as error:
        return None, _composition_error(config_name, overrides, error)
    message = _new_top_level_key(config_name, overrides, cfg)
    return (None, message) if message else (cfg, None)


def _composition_error(config_name: str, overrides: list[str], error: Exception) -> str:
    """The one line for a failed composition: the override whose key does not exist, with the closest keys of the
    config composed without it."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException, OverrideParseException

    if isinstance(error, OverrideParseException):
        return _parse_error_message(config_name, str(error.override), error)
    cause = error.__cause__ or error.__context__
    while cause is not None and not getattr(cause, "full_key", None):  # omegaconf's key errors carry it
        cause = cause.__cause__ or cause.__context__
    key = str(getattr(cause, "full_key", ""))
    override = next((o for o in overrides if key and (o.lstrip("+~").split("=")[0] + ".").startswith(key + ".")), None)
    if override is None:
        return f"{str(error).splitlines()[0]} (config {config_name}; HYDRA_FULL_ERROR=1 shows the details)"
    rest = [o for o in overrides if o != override]
    try:
        with initialize_config_module(config_module=CONFIG_MODULE, version_base="1.3"):
            without = compose(config_name=config_name, overrides=rest)
    except HydraException:
        without = None
    return _unknown_key_message(key, override, without)


def _parse_error_message(config_name: str, override: str, error: Exception) -> str:
    """The one line for an argument Hydra's override grammar cannot read: not ``key=value`` at all (a bare path or
    word), or a value with characters the grammar gives a meaning (brackets, ``$``, quotes, spaces)."""
    if "=" not in override:
        key = "experiment" if config_name == "fit" else "ckpt_path"  # the value most often typed alone
        return (f"'{override}' is not key=value: every argument of this command is key=value (config "
                f"{config_name}), e.g. {key}={override}")
    lines = [line for line in str(error).splitlines()
             if line and not line.startswith(("Error parsing override", "See https://"))]
    reason = f" ({lines[0].split(' expecting ')[0]})" if lines else ""  # not the grammar's list of tokens
    return (f"'{override}': the value cannot be read{reason}; a list is written [a,b], and a value with spaces, "
            f"brackets, quotes or $ is quoted, e.g. 'key=\"a value\"' (config {config_name})")


def command_line_error(config_name: str, overrides: list[str]) -> str | None:
    """A one-line message for what fails when ``config_name`` is composed with ``overrides``, or None
    (:func:`compose_command_line`)."""
    return compose_command_line(config_name, overrides)[1]


def output_folder_error(cfg: DictConfig, overrides: list[str]) -> str | None:
    """A one-line message when the run folder Hydra will create (``hydra.run.dir`` of ``cfg``, composed with
    Hydra's node, under ``paths.output_dir``) cannot be created, or None (:func:`~ochmr_lit.paths.folder_problem`);
    Hydra would stop with a traceback while creating it.
    ``overrides``: the command line, which says whether ``hydra.run.dir`` was given."""
    from omegaconf.errors import OmegaConfBaseException

    try:
        folder = Path(str(cfg.hydra.run.dir)).absolute()
    except OmegaConfBaseException:  # a folder named by a value set later (or not at all)
        return None
    problem = folder_problem(folder)
    if problem is None:
        return None
    given = {o.split("=", 1)[0].lstrip("+"): o.split("=", 1)[1] for o in overrides if "=" in o}
    if "hydra.run.dir" in given or ("paths" not in cfg and "out" not in given):
        key, value = "hydra.run.dir", folder
    elif "paths" not in cfg:  # predict: the folder is out=
        key, value = "out", given["out"]
    else:
        key, value = "paths.output_dir", cfg.paths.output_dir
    return (f"{key}={value}: the run folder {folder} cannot be created ({problem}); give a folder that can be "
            f"written, e.g. {key}=outputs")


def check_command_line(config_name: str, argv: list[str]) -> DictConfig | None:
    """The command line's config, composed once with Hydra's node (None where it is left to Hydra: multirun,
    Hydra's flags); exits with status 2 and one line on stderr when it cannot be composed, or its run folder cannot
    be created."""
    cfg, message = compose_command_line(config_name, argv, hydra_config=True)
    if message is None and cfg is not None:
        message = output_folder_error(cfg, argv)
    if message is not None:
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(2)
    return cfg


def existing_above_run_folder(cfg: DictConfig | None) -> Path | None:
    """The nearest folder at or above the run folder Hydra will create for ``cfg`` (``hydra.run.dir``, composed with
    Hydra's node) that exists before the command runs; None when that folder is not known yet. A command stopped by a
    user error removes the empty folders it made below it (:func:`ochmr_lit.errors.user_errors`)."""
    from omegaconf.errors import OmegaConfBaseException

    if cfg is None:
        return None
    try:
        return existing_folder(str(cfg.hydra.run.dir))
    except OmegaConfBaseException:  # a folder named by a value set later (or not at all)
        return None
