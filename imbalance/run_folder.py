"""Run folders belong to their run.

A training run writes only into a new or empty folder, or into the folder of an earlier run of
this tool, recognised by its marker ``run.json`` (written before anything else). The marker
records the run's status (``running`` -> ``complete`` / ``interrupted`` / ``failed``), who runs
it, and every file the run writes, listed *before* the file is first written. So:

- a folder that holds anything else is refused, and no file of it is touched;
- an earlier run is replaced only with ``--overwrite``, and then only its own listed files are
  removed (nothing else in the folder), after the new run's input has been read and checked, so
  a typo in the new command does not cost the old run;
- an exclusive lock (``flock`` on ``.run.lock``, released by the kernel when the process dies)
  stops a second run in the same folder; a ``running`` status without a holder of the lock is a
  run that was killed;
- a run that stops on bad input before training leaves nothing behind (the folder too, if it
  made it); one that fails later is marked ``failed``; Ctrl-C or SIGTERM marks it ``interrupted``
  and keeps ``last.pt`` for ``--resume``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import socket
import sys
from pathlib import Path
from typing import Any, Optional

from .errors import UserError
from .files import temp_pattern, write_json

try:  # POSIX; elsewhere runs go unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["MARKER", "LOCK", "RunFolder", "read_marker", "STATUSES"]

log = logging.getLogger(__name__)

MARKER = "run.json"
LOCK = ".run.lock"
STATUSES = ("running", "complete", "interrupted", "failed")
TOOL = "imbalance-toolkit"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def read_marker(folder: str | Path) -> Optional[dict[str, Any]]:
    """The run record of ``folder``, or None when it has none (or an unreadable one)."""
    path = Path(folder) / MARKER
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tool") != TOOL or record.get("status") not in STATUSES:
        return None
    if not isinstance(record.get("files"), list):
        return None
    return record


def _check_path(path: str, flag: str) -> Path:
    if not path or not path.strip():
        raise UserError(f"{flag} is empty; name a folder for the run's files, e.g. {flag} checkpoints/run")
    folder = Path(path)
    for parent in [folder, *folder.parents]:
        if parent.exists() and not parent.is_dir():
            what = "is a file" if parent == folder else f"lies under '{parent}', which is a file"
            raise UserError(f"{flag} '{folder}' {what}; choose a folder path")
    return folder


class RunFolder:
    """A claimed (locked) run folder. Use :meth:`claim`, then :meth:`begin` once the input is
    known to be good, :meth:`file` for every path written, and :meth:`finish` at the end."""

    def __init__(self, path: Path, *, flag: str, created: bool, earlier: Optional[dict[str, Any]], lock_handle: Any,
                 argv: Optional[list[str]] = None) -> None:
        self.path = path
        self.flag = flag
        self.created = created  # this run made the folder (removed again if it stops on bad input)
        self.earlier = earlier  # the marker of the run this one replaces or resumes
        self._lock = lock_handle
        self.argv = list(sys.argv if argv is None else argv)
        self.record: Optional[dict[str, Any]] = None  # this run's marker, from begin()
        self.resumed = False

    # -- claiming ------------------------------------------------------------------------------

    @classmethod
    def claim(cls, path: str, *, overwrite: bool = False, resume: bool = False, flag: str = "--output_dir",
              argv: Optional[list[str]] = None) -> "RunFolder":
        """Check that ``path`` may receive this run and lock it; nothing of an earlier run changes yet."""
        folder = _check_path(path, flag)
        created = not folder.exists()
        if resume and created:
            raise UserError(f"--resume '{folder}': no such folder; pass the run folder of an interrupted run")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"{flag} '{folder}': cannot create the folder ({exc.strerror or exc}); choose a writable path") from None
        try:
            earlier = cls._admit(folder, overwrite=overwrite, resume=resume, flag=flag)
            lock = cls._lock_folder(folder, flag)
        except BaseException:
            if created:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        claimed = cls(folder, flag=flag, created=created, earlier=earlier, lock_handle=lock, argv=argv)
        if earlier is not None and earlier["status"] == "running" and not resume:
            log.warning("%s '%s': its earlier run (pid %s) stopped without finishing", flag, folder, earlier.get("pid"))
        return claimed

    @staticmethod
    def _admit(folder: Path, *, overwrite: bool, resume: bool, flag: str) -> Optional[dict[str, Any]]:
        try:
            entries = sorted(p.name for p in folder.iterdir())
        except OSError as exc:
            raise UserError(f"{flag} '{folder}': cannot read the folder ({exc.strerror or exc})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise UserError(f"{flag} '{folder}': the folder is not writable; choose another path or fix its permissions")
        marker = read_marker(folder)
        if resume:
            if marker is None:
                raise UserError(f"--resume '{folder}': not a run folder of this tool (no readable {MARKER})")
            if marker["status"] == "complete":
                raise UserError(f"--resume '{folder}': that run is complete; there is nothing to resume")
            return marker
        if marker is None:
            others = [e for e in entries if e != LOCK]
            if others:
                shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
                raise UserError(f"{flag} '{folder}' holds files that no run of this tool wrote ({shown}); "
                                "choose a new or empty folder")
            return None
        if not overwrite:
            raise UserError(f"{flag} '{folder}' holds an earlier run ({marker['status']}, started {marker.get('started', '?')}); "
                            "pass --overwrite to replace it, or choose another folder")
        return marker

    @staticmethod
    def _lock_folder(folder: Path, flag: str) -> Any:
        path = folder / LOCK
        try:
            handle = open(path, "a+")
        except OSError as exc:
            raise UserError(f"{flag} '{folder}': cannot write into the folder ({exc.strerror or exc}); "
                            "choose a writable path") from None
        if fcntl is None:
            return handle
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise UserError(f"{flag} '{folder}' is in use by a running training run ({holder}); wait for it, "
                            "or choose another folder") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        return handle

    # -- the run's life ------------------------------------------------------------------------

    def begin(self, *, resume: bool = False) -> None:
        """Make the folder this run's: remove the replaced run's files (``--overwrite``), or keep
        the interrupted run's (``--resume``), then write the marker with status ``running``."""
        self.resumed = resume
        if resume and self.earlier is not None:
            for name in self.earlier["files"]:  # temporary files of writes a kill cut short
                if _own_entry(self.path, name) is not None:
                    _remove_temporary(self.path, name)
            self.record = dict(self.earlier)
            self.record.update(status="running", pid=os.getpid(), host=socket.gethostname(), resumed=_now(),
                               resumes=int(self.earlier.get("resumes", 0)) + 1)
            self.record.pop("error", None)
            self._write_record()
            return
        if self.earlier is not None:
            self.remove_earlier_run()
        self.record = {
            "tool": TOOL, "status": "running", "command": self.argv, "pid": os.getpid(), "host": socket.gethostname(),
            "started": _now(), "updated": _now(), "files": [],
        }
        self._write_record()

    def remove_earlier_run(self) -> None:
        """Remove every file the earlier run listed (and its temporary files); nothing else."""
        assert self.earlier is not None
        removed = _remove_listed(self.path, self.earlier)
        log.info("%s '%s': removed the earlier run's %d files (--overwrite)", self.flag, self.path, removed)
        self.earlier = None

    def file(self, name: str) -> Path:
        """The path of one of the run's outputs (a file, or a folder such as ``tensorboard``),
        listed in the marker before it is first written."""
        if self.record is None:
            raise RuntimeError("RunFolder.begin() must come before the run writes files")
        if name not in self.record["files"]:
            self.record["files"].append(name)
            self._write_record()
        return self.path / name

    def finish(self, status: str, *, error: Optional[str] = None, **extra: Any) -> None:
        if self.record is None:
            return
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        self.record.update(status=status, finished=_now(), **extra)
        if error:
            self.record["error"] = error
        self._write_record()

    def abandon(self) -> None:
        """The run stopped on bad input before :meth:`begin`: leave the folder as it was found."""
        self.release()
        if self.record is None and self.earlier is None:
            (self.path / LOCK).unlink(missing_ok=True)
            if self.created:
                shutil.rmtree(self.path, ignore_errors=True)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the descriptor releases the flock
            self._lock = None

    def _write_record(self) -> None:
        assert self.record is not None
        self.record["updated"] = _now()
        write_json(self.path / MARKER, self.record)


def _own_entry(folder: Path, name: Any) -> Optional[Path]:
    """``folder / name`` when ``name`` is one plain entry name inside ``folder``; None for
    anything else (absolute paths, ``..``, separators): a damaged or tampered marker must never
    reach outside its folder."""
    if not isinstance(name, str) or name in ("", ".", "..") or "\0" in name or "/" in name or "\\" in name:
        return None
    if Path(name).name != name or Path(name).is_absolute():
        return None
    target = folder / name
    if target.parent.resolve() != folder.resolve():
        return None
    return target


def _remove_listed(folder: Path, record: dict[str, Any]) -> int:
    removed = 0
    for name in record.get("files", []):
        target = _own_entry(folder, name)
        if target is None:
            log.warning("%s: ignoring the listed file %r: not a plain name inside the folder", folder / MARKER, name)
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()  # a link itself, never what it points to
            removed += 1
        elif target.is_dir():
            inner = read_marker(target)
            if inner is not None:  # a nested run (--compare): its own files, then the folder if empty
                removed += _remove_listed(target, inner)
                for own in (MARKER, LOCK):
                    (target / own).unlink(missing_ok=True)
                if not any(target.iterdir()):
                    target.rmdir()
            else:  # a folder of the run's own (tensorboard)
                shutil.rmtree(target)
                removed += 1
        _remove_temporary(folder, name)
    return removed


def _remove_temporary(folder: Path, name: str) -> None:
    for stale in folder.glob(temp_pattern(name)):
        stale.unlink(missing_ok=True)
