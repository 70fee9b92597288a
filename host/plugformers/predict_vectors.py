"""``plugformers predict --output X.npy`` / ``X.safetensors``: embeddings streamed to disk, one row per input.

While the job runs, each vector is appended to ``X.rows.partial`` (raw float32) and its id to
``X.ids.jsonl.partial`` (one flushed line per row, after the row's bytes): memory holds one window of results,
never the corpus' vectors. An input that fails gets a row of NaNs and its line carries ``"input"`` and
``"error"``. When every input is done the rows are copied, in input order, into ``X`` (through a temporary
file and a rename) and the lines into ``X.ids.jsonl``, and the partial files are removed. ``--resume`` after an
interruption keeps the rows whose id line is whole and redoes the rest; a finished ``X`` is never half written.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["VECTOR_SUFFIXES", "VectorSink", "ids_path"]

#: The output suffixes written as one binary array (anything else is JSONL).
VECTOR_SUFFIXES = (".npy", ".safetensors")
#: The tensor's name in a safetensors output.
TENSOR_NAME = "embeddings"
_DTYPE = np.dtype("<f4")
_CHUNK_ROWS = 4096


def ids_path(output: Path) -> Path:
    """The side file naming each row's id (and the error of a failed input): ``X.ids.jsonl``."""
    return output.with_name(output.name + ".ids.jsonl")


class VectorSink:
    """The binary counterpart of the JSONL sink: ``done``, ``write(record)``, ``close()``, then ``finish(ids)``."""

    def __init__(self, path: Path, *, resume: bool, key: Callable[[Any], str], error: type[Exception]) -> None:
        self.path = path
        self.key = key
        self.error = error
        self.rows_path = path.with_name(path.name + ".rows.partial")
        self.lines_path = path.with_name(ids_path(path).name + ".partial")
        self.done: set[str] = set()
        self.dim: int | None = None
        self.count = 0
        self._pending: list[dict[str, Any]] = []  # failures seen before the first vector gives the width
        started = self.lines_path.exists() or self.rows_path.exists()
        if not resume and (started or path.exists()):
            shown = path if path.exists() else self.lines_path
            raise error(f"{shown} already exists; pass --resume to skip the ids it holds, or remove it")
        #: A previous run finished ``X``: its ids are done, and nothing more may be added to it.
        self.finished = resume and not started and path.exists()
        self.rows: Any = None
        self.lines: Any = None
        if self.finished:
            self.done = {key(line["id"]) for line in _read_lines(ids_path(path))}
            return
        self._repair()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._open()

    def _open(self) -> None:
        self.rows = open(self.rows_path, "ab")
        self.lines = open(self.lines_path, "a", encoding="utf-8")

    def _repair(self) -> None:
        """Keep the rows of whole id lines; drop a line cut short and bytes written past the last whole line."""
        if not self.lines_path.exists():
            self.rows_path.unlink(missing_ok=True)
            return
        data = self.lines_path.read_bytes()
        keep = data.rfind(b"\n") + 1
        lines = [json.loads(line) for line in data[:keep].decode("utf-8").splitlines()]
        if lines and "dim" in lines[0]:
            self.dim = int(lines[0]["dim"])
            lines = lines[1:]
        self.count = len(lines)
        self.done = {self.key(line["id"]) for line in lines}
        with open(self.lines_path, "r+b") as handle:
            handle.truncate(keep)
        size = self.count * (self.dim or 0) * _DTYPE.itemsize
        if self.rows_path.exists() and self.rows_path.stat().st_size < size:
            raise self.error(f"{self.rows_path} is shorter than {self.lines_path} says; remove both and rerun")
        with open(self.rows_path, "ab") as handle:
            handle.truncate(size)

    def check_more(self, todo: int) -> None:
        """Refuse to add inputs to a finished ``X`` (its rows are final); fine when nothing is left to do."""
        if self.finished and todo:
            raise self.error(
                f"{self.path} is finished and lacks {todo} of the inputs; write them to another file, or remove it"
            )

    def write(self, record: dict[str, Any]) -> None:
        if "error" in record:
            line = {"id": record["id"], "input": record["input"], "error": record["error"]}
            if self.dim is None:
                self._pending.append(line)
            else:
                self._row(np.full(self.dim, np.nan, dtype=_DTYPE), line)
            return
        vector = np.asarray(record["output"], dtype=_DTYPE)
        if vector.ndim != 1:
            raise self.error(
                f"{self.path.suffix} output holds one vector per input, got shape {vector.shape}: "
                "embed with --pooling (or a sentence-transformers folder), or write JSONL"
            )
        if self.dim is None:
            self.dim = int(vector.shape[0])
            self._line({"dim": self.dim, "dtype": "float32"})
            pending, self._pending = self._pending, []
            for line in pending:
                self._row(np.full(self.dim, np.nan, dtype=_DTYPE), line)
        elif vector.shape[0] != self.dim:
            raise self.error(f"vectors of {vector.shape[0]} values after {self.dim}: one width per output file")
        self._row(vector, {"id": record["id"]})

    def _row(self, vector: np.ndarray, line: dict[str, Any]) -> None:
        self.rows.write(vector.tobytes())
        self.rows.flush()  # the row's bytes land before the line that vouches for them
        self._line(line)
        self.count += 1

    def _line(self, line: dict[str, Any]) -> None:
        self.lines.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
        self.lines.flush()

    def close(self) -> None:
        for handle in (self.rows, self.lines):
            if handle is not None and not handle.closed:
                handle.flush()
                os.fsync(handle.fileno())
                handle.close()

    def finish(self, ids: Iterable[Any]) -> None:
        """Write ``X`` and ``X.ids.jsonl`` with the rows in the order of ``ids`` (every input of the job)."""
        if self.finished:
            return
        if self._pending:  # every input failed: no width was ever seen
            self.dim = self.dim or 0
            self._open()
            self._line({"dim": self.dim, "dtype": "float32"})
            for line in self._pending:
                self._row(np.zeros(0, dtype=_DTYPE), line)
            self._pending = []
            self.close()
        lines = _read_lines(self.lines_path)
        if lines and "dim" in lines[0]:
            lines = lines[1:]
        where = {self.key(line["id"]): n for n, line in enumerate(lines)}
        order = []
        for ident in ids:
            row = where.get(self.key(ident))
            if row is None:
                raise self.error(f"input {ident!r} has no row in {self.rows_path}; rerun with --resume")
            order.append(row)
        dim = self.dim or 0
        _write_array(self.path, self.rows_path, np.asarray(order, dtype=np.int64), dim)
        _atomic_lines(ids_path(self.path), (lines[row] for row in order))
        self.rows_path.unlink()
        self.lines_path.unlink()


def _read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _header(suffix: str, rows: int, dim: int) -> bytes:
    """The bytes before the data: a .npy header, or a safetensors length and JSON header."""
    if suffix == ".npy":
        import io

        buffer = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            buffer, {"descr": np.lib.format.dtype_to_descr(_DTYPE), "fortran_order": False, "shape": (rows, dim)}
        )
        return buffer.getvalue()
    size = rows * dim * _DTYPE.itemsize
    meta = {TENSOR_NAME: {"dtype": "F32", "shape": [rows, dim], "data_offsets": [0, size]}, "__metadata__": {"format": "np"}}
    text = json.dumps(meta, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text


def _write_array(target: Path, rows_path: Path, order: np.ndarray, dim: int) -> None:
    """``target`` holding the rows of ``rows_path`` in ``order``, copied a chunk at a time, then renamed into place."""
    width = dim * _DTYPE.itemsize
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out, open(rows_path, "rb") as source:
            out.write(_header(target.suffix, len(order), dim))
            for start in range(0, len(order), _CHUNK_ROWS):
                chunk = order[start : start + _CHUNK_ROWS]
                if len(chunk) and (np.diff(chunk) == 1).all():  # the usual case: rows already in input order
                    source.seek(int(chunk[0]) * width)
                    out.write(source.read(len(chunk) * width))
                    continue
                for row in chunk:
                    source.seek(int(row) * width)
                    out.write(source.read(width))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _atomic_lines(target: Path, lines: Iterable[dict[str, Any]]) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            for line in lines:
                out.write(json.dumps(line, ensure_ascii=False, default=str) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
