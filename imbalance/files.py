"""The one way this toolkit writes a file: atomically, with ordinary permissions.

Every output (json, md, csv, pt) is written to a temporary file in the destination's folder and
renamed over the destination only once it is complete, so a reader (or a run killed half-way)
sees the old file or the new one, never a torn one. ``tempfile.mkstemp`` creates files readable
by their owner only; the renamed file gets the permissions an ordinary ``open(path, "w")`` would
give it (0666 less the umask). An operating-system failure (disk full, permission denied, a path
under a file) becomes a one-line :class:`~imbalance.errors.UserError` naming the file.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, IO

import numpy as np

from .errors import UserError

__all__ = ["write_atomic", "write_text", "write_json", "write_csv", "save_torch", "ordinary_mode", "temp_pattern", "json_default"]


def ordinary_mode() -> int:
    """0666 less the process's umask: what ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def temp_pattern(name: str) -> str:
    """The glob of the temporary files a write of ``name`` may leave if the process is killed."""
    return f".{name}.*.tmp"


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write`` with a binary file object, then move the finished file to ``path``."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, ordinary_mode())
        os.replace(tmp, path)
        tmp = None
    except OSError as exc:
        raise UserError(f"could not write '{path}': {exc.strerror or exc}; check the folder's permissions and free space") from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return write_atomic(path, lambda handle: handle.write(text.encode("utf-8")))


def json_default(value: Any) -> Any:
    """``json.dumps(default=...)`` for numpy scalars and arrays and paths."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def write_json(path: str | Path, payload: Any) -> Path:
    """Indented JSON; NaN and infinities are written as JSON's NaN / Infinity (Python reads them back)."""
    return write_text(path, json.dumps(payload, indent=2, allow_nan=True, default=json_default) + "\n")


def write_csv(path: str | Path, frame: Any, **to_csv: Any) -> Path:
    """A pandas DataFrame through ``DataFrame.to_csv(**to_csv)``."""

    def write(handle: IO[bytes]) -> None:
        frame.to_csv(handle, **to_csv)

    return write_atomic(path, write)


def save_torch(path: str | Path, payload: Any) -> Path:
    import torch  # only the checkpoint writers need it

    return write_atomic(path, lambda handle: torch.save(payload, handle))

