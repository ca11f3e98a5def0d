"""Gather settings from the config file, ``-o`` overrides and the environment.

Later sources win: the ``[config]`` section of the file, then each override,
then ``SPARKLES_STORE``, ``SPARKLES_STORAGE`` and ``SPARKLES_CLUSTER`` for
their one role each. ``SPARKLES_HOME`` moves the state folder. Google's own
``gcloud`` configuration is never read, so a run depends only on what is
written here.
"""

from __future__ import annotations

import configparser
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import platformdirs

from sparkles_core.config.keys import check_keys
from sparkles_core.config.model import Config
from sparkles_core.config.resolve import build_config
from sparkles_core.config.settings import Setting, Settings
from sparkles_core.errors import ConfigError

__all__ = ["find_config_file", "load_config", "parse_override"]

logger = logging.getLogger(__name__)

CONFIG_FILE_NAMES = (".sparkles", ".kubeque")
SECTION = "config"

_ROLE_VARIABLES = {
    "store": "SPARKLES_STORE",
    "storage": "SPARKLES_STORAGE",
    "cluster": "SPARKLES_CLUSTER",
}
_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def find_config_file(cwd: Path) -> Path | None:
    """Return the nearest ``.sparkles`` or ``.kubeque`` in ``cwd`` or above."""
    folder = cwd.absolute()
    for candidate_folder in (folder, *folder.parents):
        for name in CONFIG_FILE_NAMES:
            candidate = candidate_folder / name
            if candidate.is_file():
                return candidate
    return None


def parse_override(text: str) -> tuple[str, str]:
    """Return the key and value of a ``key=value`` override."""
    key, sep, value = text.partition("=")
    key = key.strip()
    if not sep or not _KEY.fullmatch(key):
        raise ConfigError(
            f"Bad override {text!r}; expected the form key=value, "
            "for example -o machine_type=n2-standard-4."
        )
    return key, value.strip()


def load_config(
    config_file: Path | None = None,
    overrides: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Return the configuration from the file, the overrides and the environment."""
    env = os.environ if environ is None else environ
    folder = Path.cwd() if cwd is None else cwd.absolute()
    source = _choose_file(config_file, folder)

    items = {} if source is None else _read_file(source)
    for key, value in (overrides or {}).items():
        origin = f"the override -o {key}={value}"
        items[key.strip().lower()] = Setting(value, origin, folder)
    check_keys(items)
    items.update(_role_variables(env, folder))

    return build_config(Settings(items), home=_home(env, folder), source=source)


def _choose_file(config_file: Path | None, cwd: Path) -> Path | None:
    """Return the file to read: the one given, else the nearest one found."""
    if config_file is None:
        return find_config_file(cwd)
    path = cwd / config_file.expanduser()
    if not path.is_file():
        raise ConfigError(
            f"Config file {str(path)!r} does not exist; check the path given "
            "with -c/--config."
        )
    return path


def _read_file(path: Path) -> dict[str, Setting]:
    """Return the settings of the ``[config]`` section of ``path``."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a BOM.
        with path.open(encoding="utf-8-sig") as stream:
            parser.read_file(stream)
    except OSError as exc:
        raise ConfigError(
            f"Cannot read config file {str(path)!r}: {exc.strerror}; check the "
            "path and its permissions."
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"Config file {str(path)!r} is not UTF-8 text (byte {exc.start} "
            "cannot be read); save it as UTF-8."
        ) from exc
    except configparser.Error as exc:
        raise ConfigError(_describe_parse_error(path, exc)) from exc

    if not parser.has_section(SECTION):
        raise ConfigError(
            f"Config file {str(path)!r} has no [{SECTION}] section; add a line "
            f"'[{SECTION}]' above its keys."
        )
    logger.debug("Config: reading %s", path)
    origin = str(path)
    return {
        key: Setting(value, origin, path.parent) for key, value in parser.items(SECTION)
    }


def _describe_parse_error(path: Path, exc: configparser.Error) -> str:
    """Return one line saying what is wrong in the file and how to fix it."""
    where = f"Config file {str(path)!r}"
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return (
            f"{where}, line {exc.lineno}: a setting comes before any section "
            f"header; add a line '[{SECTION}]' above its keys."
        )
    if isinstance(exc, configparser.DuplicateOptionError):
        return (
            f"{where}, line {exc.lineno}: key {exc.option!r} is set twice in "
            f"[{exc.section}]; keep one of them."
        )
    if isinstance(exc, configparser.DuplicateSectionError):
        return (
            f"{where}, line {exc.lineno}: section [{exc.section}] appears twice; "
            "merge the two into one."
        )
    if isinstance(exc, configparser.ParsingError):
        lineno = exc.errors[0][0]
        return (
            f"{where}, line {lineno}: cannot read {_line(path, lineno)!r}; write "
            "each setting as key = value."
        )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{where} cannot be read: {first}; fix it and try again."


def _line(path: Path, lineno: int) -> str:
    """Return line ``lineno`` (from 1) of a text file, stripped."""
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    return lines[lineno - 1].strip() if 0 < lineno <= len(lines) else ""


def _role_variables(env: Mapping[str, str], cwd: Path) -> dict[str, Setting]:
    """Return the role URLs set by environment variables."""
    return {
        key: Setting(env[name], f"the environment variable {name}", cwd)
        for key, name in _ROLE_VARIABLES.items()
        if env.get(name, "").strip()
    }


def _home(env: Mapping[str, str], cwd: Path) -> Path:
    """Return the state folder: ``$SPARKLES_HOME``, else the user data folder."""
    given = env.get("SPARKLES_HOME", "").strip()
    if given:
        return cwd / Path(given).expanduser()
    return Path(platformdirs.user_data_dir("sparkles"))
