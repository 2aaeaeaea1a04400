"""Where the config file and the state (the ledger) live.

``--config`` > ``SMSPIPE_CONFIG`` > ``SMSPIPE_HOME/config.yaml`` > the user
config dir; ``SMSPIPE_HOME`` moves the state dir too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

APP_NAME = "smspipe"
CONFIG_FILENAME = "config.yaml"
LEDGER_FILENAME = "ledger.sqlite3"


def home_dir(env: Mapping[str, str]) -> Path | None:
    home = env.get("SMSPIPE_HOME")
    return Path(home).expanduser() if home else None


def default_config_path(env: Mapping[str, str]) -> Path:
    home = home_dir(env)
    if home is not None:
        return home / CONFIG_FILENAME
    import platformdirs

    return Path(platformdirs.user_config_dir(APP_NAME)) / CONFIG_FILENAME


def state_dir(env: Mapping[str, str]) -> Path:
    home = home_dir(env)
    if home is not None:
        return home / "state"
    import platformdirs

    return Path(platformdirs.user_state_dir(APP_NAME))


def default_ledger_path(env: Mapping[str, str]) -> Path:
    return state_dir(env) / LEDGER_FILENAME


def locate(config_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> tuple[Path, str]:
    """The config file's path and why: the caller's, else SMSPIPE_CONFIG, else the default."""
    if config_path is not None:
        from smspipe.spelling import given, setting

        return Path(config_path).expanduser(), f"{given()} ({setting('config')})"
    if env.get("SMSPIPE_CONFIG"):
        return Path(env["SMSPIPE_CONFIG"]).expanduser(), "environment (SMSPIPE_CONFIG)"
    if home_dir(env) is not None:
        return default_config_path(env), "environment (SMSPIPE_HOME)"
    return default_config_path(env), "default (user config dir)"


def is_named(config_path: str | os.PathLike[str] | None, env: Mapping[str, str]) -> bool:
    """True when the file was named (by the caller, SMSPIPE_CONFIG): then it must exist."""
    return config_path is not None or bool(env.get("SMSPIPE_CONFIG"))
