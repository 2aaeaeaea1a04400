"""Writing a config file: mode 0600 from the first byte, atomically, never following a symlink."""

from __future__ import annotations

import os
from pathlib import Path

from smspipe.errors import ConfigError
from smspipe.spelling import setting


def write_file(path: Path, text: str, *, force: bool = False) -> None:
    """Write a config file with mode 0600 from the first byte (it may hold secrets).

    Without *force* an existing file is never replaced (O_EXCL, so no race either);
    with it the new file is written beside and renamed over the old one.
    """
    data = text.encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if force else path
    try:
        fd = os.open(target, flags, 0o600)
    except FileExistsError:
        raise ConfigError(
            f"{path} already exists",
            hint=f"use {setting('force')} to overwrite it, or {setting('config')} PATH to write another file",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as stream:
            if hasattr(os, "fchmod"):
                os.fchmod(stream.fileno(), 0o600)  # exactly 600, whatever the umask
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        if force:
            os.replace(target, path)
    except OSError as exc:
        target.unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None
    except BaseException:
        target.unlink(missing_ok=True)
        raise
