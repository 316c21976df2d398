"""Resume state of `diarq batch`: a JSON file in the output directory that maps each
input file (relative path + SHA-256) to its job, so a second run after an interruption
polls the jobs it already has instead of uploading those files again."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_NAME = ".diarq-batch.json"
VERSION = 1


@dataclass
class FileState:
    sha256: str
    job_id: str | None = None  # None: rejected by the server
    batch_id: str | None = None
    status: str | None = None
    written: list[str] = field(default_factory=list)  # formats written to the output dir
    error: str | None = None  # rejection reason or job error


@dataclass
class BatchState:
    path: Path
    server: str
    files: dict[str, FileState] = field(default_factory=dict)  # relative posix path -> state

    @classmethod
    def load(cls, out_dir: Path, server: str) -> BatchState:
        path = out_dir / STATE_NAME
        if not path.exists():
            return cls(path, server)
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("server") != server:
            # job ids of another server mean nothing here: start over, keep the old file
            os.replace(path, path.with_suffix(".json.old"))
            return cls(path, server)
        files = {rel: FileState(**fs) for rel, fs in raw.get("files", {}).items()}
        return cls(path, server, files)

    def known(self, rel: str, sha256: str) -> FileState | None:
        """The state of this exact file (same path and content), if it was sent before."""
        fs = self.files.get(rel)
        return fs if fs is not None and fs.sha256 == sha256 else None

    def save(self) -> None:
        """Atomically (write then rename): an interruption never leaves half a file."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".json.tmp")
        body = {"version": VERSION, "server": self.server,
                "files": {rel: asdict(fs) for rel, fs in sorted(self.files.items())}}
        tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
        os.replace(tmp, self.path)


