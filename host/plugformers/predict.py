"""``plugformers predict``: run a checkpoint over many inputs as a batch job, on :func:`plugformers.pipeline`.

Inputs come from arguments (texts, or image/audio files, folders and glob patterns), ``-`` (standard input,
one a line), ``--input-file`` (one a line) and ``--input-jsonl FILE --field NAME``. Every input gets an id:
the JSONL record's ``--id-field`` when it has one, else its position in the job (0, 1, ...).

With ``--output FILE`` each result is appended to a JSONL file as one whole, flushed line
``{"id", "input", "output"}``; an input that fails (unreadable image, empty text, corrupt WAV) gets
``{"id", "input", "error"}`` and the job goes on (``--fail-fast`` stops it). ``--resume`` skips the ids the
file already holds, so an interrupted job continues where it stopped; a line cut short by the interruption is
dropped and redone. Without ``--output`` the results are printed as a table (or JSON with ``--json``).

Under ``torchrun --nproc-per-node N -m plugformers predict ...`` the inputs are dealt out to the ranks in turn;
each rank writes ``FILE.rank<r>-of-<N>`` (gloo on the CPU, nccl with ``--device cuda``, one GPU per rank) and,
when every rank is done, rank 0 merges the parts into ``FILE`` in input order. ``--resume`` resumes each
rank from its part.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plugformers.vocabulary import QUANTIZE_MODES, TASKS

__all__ = ["add_arguments", "run"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
AUDIO_EXTENSIONS = (".wav", ".wave")
#: What a progress bar counts, per modality.
_UNITS = {"text": "texts", "image": "images", "audio": "audio files"}


class PredictError(Exception):
    """A problem with the job itself (not with one input): printed as one line, exit code 1."""


@dataclass
class Item:
    """One input of the job: its id, the value the pipeline gets, and what the output shows as the input."""

    id: Any
    value: Any
    shown: Any
    error: str | None = None


# ----- arguments -------------------------------------------------------------------------------------------


def add_arguments(p: argparse.ArgumentParser, positive_int: Any) -> None:
    """The ``predict`` options (``positive_int`` is the command line's checked integer type)."""
    p.add_argument("checkpoint", help="checkpoint folder or Hub repository id")
    p.add_argument("inputs", nargs="*", help="texts, or image/audio files, folders and glob patterns; '-' reads stdin")
    p.add_argument("--task", choices=sorted(TASKS), help="default: the task of the checkpoint's architectures")
    p.add_argument("--input-file", action="append", default=[], metavar="FILE", help="one input a line (repeatable)")
    p.add_argument("--input-jsonl", metavar="FILE", help="one JSON object a line; the input is in --field")
    p.add_argument("--field", help="the input's field in --input-jsonl (default: text, or path for images and audio)")
    p.add_argument("--id-field", default="id", help="the id's field in --input-jsonl (default: id; else the position)")
    p.add_argument("--output", metavar="FILE",
                   help="append results to this JSONL file, one flushed line each; embeddings to FILE.npy or "
                        "FILE.safetensors: one float32 row per input (ids in FILE.ids.jsonl)")
    p.add_argument("--resume", action="store_true", help="skip the ids --output already holds")
    p.add_argument("--fail-fast", action="store_true", help="stop at the first input that fails")
    p.add_argument("--batch-size", type=positive_int, default=8, help="inputs per forward pass (default 8)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (under torchrun, cuda means one GPU per rank)")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16"))
    p.add_argument("--quantize", choices=QUANTIZE_MODES, help="int8: int8 linear layers (CPU; see docs/deployment.md)")
    p.add_argument(
        "--fast-path", action=argparse.BooleanOptionalAction, default=None,
        help="the model's inference fast path (fused projections); default: on where it is faster (see pipeline())",
    )
    p.add_argument("--num-workers", type=int, default=0, help="threads decoding images and audio (default: none)")
    p.add_argument("--top-k", type=positive_int, default=3, help="how many labels or fills to show (default 3)")
    p.add_argument("--candidate-labels", help="zero-shot-classification: the labels, comma-separated")
    p.add_argument("--hypothesis-template", help="zero-shot-classification: e.g. 'This text is about {}.'")
    p.add_argument("--multi-label", action="store_true", help="zero-shot-classification: score each label alone")
    p.add_argument("--aggregation-strategy", choices=("none", "simple", "first", "average", "max"), default="none",
                   help="token-classification: group tokens into words and entities")
    p.add_argument("--ignore-labels", default="O", help="token-classification: labels left out, comma-separated")
    p.add_argument("--pooling", choices=("mean", "cls", "max"),
                   help="feature-extraction tasks: one vector per input (default: a sentence-transformers folder's)")
    p.add_argument("--normalize", action=argparse.BooleanOptionalAction, default=None,
                   help="feature-extraction tasks: unit-length vectors (default: a sentence-transformers folder's)")
    p.add_argument("--subtask", choices=("panoptic", "instance", "semantic"), help="image-segmentation")
    p.add_argument("--chunk-length-s", type=float, help="automatic-speech-recognition: read long audio in chunks")
    p.add_argument("--stride-length-s", type=float, help="automatic-speech-recognition: context on each chunk side")
    p.add_argument("--revision")
    p.add_argument("--output-dir", help="where segmentation overlays are written (default: current folder)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")


def _call_parameters(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The pipeline's call parameters the options set for ``task``."""
    if task in ("text-classification", "image-classification", "audio-classification", "fill-mask"):
        return {"top_k": args.top_k}
    if task == "zero-shot-classification":
        if not args.candidate_labels:
            raise PredictError("zero-shot-classification needs --candidate-labels 'label one,label two'")
        params: dict[str, Any] = {"candidate_labels": args.candidate_labels, "multi_label": args.multi_label}
        if args.hypothesis_template:
            params["hypothesis_template"] = args.hypothesis_template
        return params
    if task == "token-classification":
        ignore = [label.strip() for label in args.ignore_labels.split(",") if label.strip()]
        return {"aggregation_strategy": args.aggregation_strategy, "ignore_labels": ignore}
    if task in ("feature-extraction", "image-feature-extraction", "audio-feature-extraction"):
        # Unset options leave the pipeline's defaults (a sentence-transformers folder's pooling) in place.
        chosen = {"pooling": args.pooling, "normalize": args.normalize}
        params = {k: v for k, v in chosen.items() if v is not None}
        if task == "image-feature-extraction" and args.pooling is None and args.normalize is not None:
            raise PredictError("--normalize needs --pooling for image-feature-extraction")
        return params
    if task == "image-segmentation":
        return {"subtask": args.subtask} if args.subtask else {}
    if task == "automatic-speech-recognition":
        params = {}
        if args.chunk_length_s:
            params["chunk_length_s"] = args.chunk_length_s
        if args.stride_length_s is not None:
            params["stride_length_s"] = args.stride_length_s
        return params
    return {}


# ----- inputs ----------------------------------------------------------------------------------------------


def collect_inputs(args: argparse.Namespace, task: str) -> list[Item]:
    """Every input of the job, in order, with its id (the same list on every rank)."""
    modality = TASKS[task].modality
    items: list[Item] = []

    def add(value: Any, shown: Any = None, ident: Any = None, error: str | None = None) -> None:
        items.append(Item(len(items) if ident is None else ident, value, value if shown is None else shown, error))

    positional = list(args.inputs)
    if task == "question-answering" and positional:
        if len(positional) != 2 or "-" in positional:
            raise PredictError("question-answering takes two inputs: the question and the context (or --input-jsonl)")
        pair = {"question": positional[0], "context": positional[1]}
        add(pair, shown=pair)
        positional = []
    for value in positional:
        if value == "-":
            for line in _lines(sys.stdin):
                _add_value(add, line, modality)
        else:
            _add_value(add, value, modality, expand=modality != "text")
    for path in args.input_file:
        try:
            with open(path, encoding="utf-8") as handle:
                for line in _lines(handle):
                    _add_value(add, line, modality)
        except OSError as exc:
            raise PredictError(f"cannot read --input-file {path}: {exc}") from exc
    if args.input_jsonl:
        _read_jsonl(args, task, add)
    if not items:
        raise PredictError("no inputs: give them as arguments, '-' (stdin), --input-file or --input-jsonl")
    seen: set[str] = set()
    for item in items:
        key = _key(item.id)
        if key in seen:
            raise PredictError(f"two inputs have the id {item.id!r}; ids must be unique to resume and merge")
        seen.add(key)
    return items


def _lines(handle: Any) -> Iterator[str]:
    for line in handle:
        line = line.rstrip("\r\n")
        if line.strip():
            yield line


def _add_value(add: Any, value: str, modality: str, *, expand: bool = True) -> None:
    """A text as it is; a media argument expanded when it is a folder or a glob pattern."""
    if modality == "text" or not expand:
        add(value)
        return
    extensions = IMAGE_EXTENSIONS if modality == "image" else AUDIO_EXTENSIONS
    if os.path.isdir(value):
        found = sorted(str(p) for p in Path(value).rglob("*") if p.is_file() and p.suffix.lower() in extensions)
        if not found:
            raise PredictError(f"folder {value} holds no {' / '.join(extensions)} files")
        for path in found:
            add(path)
    elif glob.has_magic(value):
        matched = sorted(p for p in glob.glob(value, recursive=True) if os.path.isfile(p))
        if not matched:
            raise PredictError(f"the pattern {value!r} matches no file")
        for path in matched:
            add(path)
    else:
        add(value)


def _read_jsonl(args: argparse.Namespace, task: str, add: Any) -> None:
    modality = TASKS[task].modality
    fields = ("question", "context") if task == "question-answering" else (args.field or ("text" if modality == "text" else "path"),)
    try:
        handle = open(args.input_jsonl, encoding="utf-8")
    except OSError as exc:
        raise PredictError(f"cannot read --input-jsonl {args.input_jsonl}: {exc}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                add(None, shown=line.strip()[:200], error=f"line {number} is not JSON: {exc}")
                continue
            if not isinstance(record, dict):
                add(None, shown=record, error=f"line {number} is not a JSON object")
                continue
            ident = record.get(args.id_field)
            missing = [f for f in fields if f not in record]
            if missing:
                add(None, shown=record, ident=ident, error=f"line {number} has no field {missing[0]!r}")
                continue
            value = {f: record[f] for f in fields} if len(fields) > 1 else record[fields[0]]
            add(value, ident=ident)


def _problem(item: Item, modality: str) -> str | None:
    """Why an input cannot be run at all (checked before the pipeline sees it)."""
    if item.error is not None:
        return item.error
    if modality == "text" and not isinstance(item.value, dict):
        if not isinstance(item.value, str):
            return f"expected a text, got {type(item.value).__name__}"
        if not item.value.strip():
            return "empty text"
    return None


def _key(ident: Any) -> str:
    return json.dumps(ident, sort_keys=True)


# ----- output ----------------------------------------------------------------------------------------------


class JsonlSink:
    """Appends records as whole, flushed lines; knows the ids a previous run already wrote."""

    def __init__(self, path: Path, *, resume: bool, also_done: Sequence[Path] = ()) -> None:
        self.path = path
        self.done: set[str] = set()
        if path.exists() and path.stat().st_size and not resume:
            raise PredictError(f"{path} already exists; pass --resume to skip the ids it holds, or remove it")
        if resume:
            for source in (path, *also_done):
                self.done |= _ids_in(source, repair=source == path)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(path, "a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self.handle.write(json.dumps(record, ensure_ascii=False, default=_jsonable) + "\n")
        self.handle.flush()

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()


def _ids_in(path: Path, *, repair: bool) -> set[str]:
    """The ids of the whole lines of a JSONL file; with ``repair``, a last line cut short is removed."""
    if not path.exists():
        return set()
    data = path.read_bytes()
    if repair and data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with open(path, "r+b") as handle:
            handle.truncate(keep)
        data = data[:keep]
    ids = set()
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            ids.add(_key(json.loads(line)["id"]))
        except (ValueError, KeyError, TypeError):
            continue
    return ids


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


# ----- distributed -----------------------------------------------------------------------------------------


def _world(args: argparse.Namespace) -> tuple[int, int]:
    """``(rank, world size)``; under torchrun, joins the process group (gloo on the CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world <= 1:
        return 0, 1
    import torch
    import torch.distributed as dist

    if args.output is None:
        raise PredictError("under torchrun, predict needs --output FILE (each rank writes its part, rank 0 merges them)")
    if "-" in args.inputs:
        raise PredictError("under torchrun, inputs cannot come from stdin ('-'); use --input-file or --input-jsonl")
    cuda = str(args.device).startswith("cuda")
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        args.device = f"cuda:{local}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size()


def _part(output: Path, rank: int, world: int) -> Path:
    return output.with_name(f"{output.name}.rank{rank}-of-{world}")


def _merge(output: Path, world: int, items: list[Item]) -> None:
    """Rank 0: the parts (and what ``output`` held before) into ``output``, in input order; parts removed."""
    from plugformers.utils.io import atomic_write_text

    lines: dict[str, str] = {}
    for source in (output, *(_part(output, r, world) for r in range(world))):
        if not source.exists():
            continue
        for line in source.read_text(encoding="utf-8").splitlines():
            try:
                lines[_key(json.loads(line)["id"])] = line
            except (ValueError, KeyError, TypeError):
                continue
    missing = [item.id for item in items if _key(item.id) not in lines]
    if missing:
        raise PredictError(f"cannot merge: {len(missing)} input(s) have no result (first id {missing[0]!r}); rerun with --resume")
    atomic_write_text(output, "".join(lines[_key(item.id)] + "\n" for item in items))
    for r in range(world):
        _part(output, r, world).unlink(missing_ok=True)


# ----- the job ---------------------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    """Run the job described by the parsed ``predict`` arguments (``checkpoint`` a local folder); the exit code."""
    if args.resume and not args.output:
        raise PredictError("--resume needs --output FILE (the results to resume from)")
    if args.num_workers < 0:
        raise PredictError(f"--num-workers must be 0 or more, got {args.num_workers}")
    rank, world = _world(args)
    if args.task is None or TASKS[args.task].modality == "text":
        # Padding-free text batches differ in shape from one batch to the next, and oneDNN keeps compiled kernels
        # per shape (1,024 by default): over 100,000 texts that held 170 MiB and grew all along. 16 keeps memory
        # flat (each packed shape is new anyway); read when oneDNN builds its first kernel, so set it before.
        os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
    _fixed_mmap_threshold()
    from plugformers.pipelines import pipeline
    from plugformers.predict_vectors import VECTOR_SUFFIXES, VectorSink

    options: dict[str, Any] = {"device": args.device, "batch_size": args.batch_size, "num_workers": args.num_workers}
    if args.dtype:
        options["dtype"] = args.dtype
    if args.quantize:
        options["quantize"] = args.quantize
    if args.fast_path is not None:
        options["fast_path"] = args.fast_path
    if args.revision:
        options["revision"] = args.revision
    pipe = pipeline(args.task, model=args.checkpoint, **options)
    task = pipe.task
    modality = TASKS[task].modality
    params = _call_parameters(task, args)
    items = collect_inputs(args, task)
    mine = items[rank::world]
    output = Path(args.output) if args.output else None
    sink: JsonlSink | VectorSink | None = None
    vectors = output is not None and output.suffix.lower() in VECTOR_SUFFIXES
    if vectors:
        assert output is not None
        if world > 1:
            raise PredictError(f"{output.suffix} output is written by one process; under torchrun write JSONL")
        if task not in ("feature-extraction", "image-feature-extraction", "audio-feature-extraction"):
            raise PredictError(f"{output.suffix} output holds embeddings; {task} results go to a JSONL file")
        sink = VectorSink(output, resume=args.resume, key=_key, error=PredictError)
        params["return_tensors"] = True
    elif output is not None:
        if world > 1:
            if output.exists() and output.stat().st_size and not args.resume:
                raise PredictError(f"{output} already exists; pass --resume to skip the ids it holds, or remove it")
            sink = JsonlSink(_part(output, rank, world), resume=args.resume, also_done=[output])
        else:
            sink = JsonlSink(output, resume=args.resume)
    todo = [item for item in mine if sink is None or _key(item.id) not in sink.done]
    if isinstance(sink, VectorSink):
        sink.check_more(len(todo))
    overlays = _Overlays(Path(args.output_dir or "."), task)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []
    failures: list[dict[str, Any]] = []
    results = pipe.stream((item.value for item in todo if _problem(item, modality) is None), on_error="record", **params)
    progress = _progress(len(todo), _UNITS[modality] + (f" (rank {rank}/{world})" if world > 1 else ""), enabled=rank == 0)
    try:
        for item in todo:
            problem = _problem(item, modality)
            if problem is None:
                result = next(results)
                problem = getattr(result, "reason", None)
            record: dict[str, Any] = {"id": item.id, "input": item.shown}
            if problem is not None:
                record["error"] = problem
                failures.append(record)
            else:
                record.update(overlays.record(item.value, result))
            if sink is not None:
                sink.write(record)
            else:
                records.append(record)
            if progress is not None:
                progress.update(1)
            if problem is not None and args.fail_fast:
                break
    finally:
        if progress is not None:
            progress.close()
        if sink is not None:
            sink.close()
    elapsed = time.perf_counter() - start
    if isinstance(sink, VectorSink) and not (args.fail_fast and failures):
        sink.finish(item.id for item in items)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if rank == 0 and not (args.fail_fast and failures):
            assert output is not None
            _merge(output, world, items)
        dist.barrier()
        dist.destroy_process_group()
    if sink is None:
        _print(task, records, elapsed, args, timing=not failures)
    where = f" ({len(todo)} input(s), {elapsed:.2f} s on {pipe.device})"
    if output is not None and rank == 0:
        print(f"{task}: results in {output}{where}", file=sys.stderr)
    if failures:
        first = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        stopped = "; stopped (--fail-fast)" if args.fail_fast else ""
        raise PredictError(f"{len(failures)} of {len(todo)} input(s) failed{stopped}: {first['input']}: {first['error']}{more}")
    return 0


def _fixed_mmap_threshold(threshold: int = 64 * 1024) -> None:
    """Serve large blocks from mmap for the whole job (glibc only; elsewhere nothing happens).

    glibc raises its mmap threshold each time a large block is freed, after which activations of varying sizes
    come from the heap and fragment it: embedding 10,000 texts with all-MiniLM-L6-v2 grew RSS from 565 to 745
    MiB; with a fixed threshold (``MALLOC_MMAP_THRESHOLD_=65536``) it stayed at 373-380 MiB throughout.
    """
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-3, threshold)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return


def _progress(total: int, what: str, *, enabled: bool) -> Any:
    """A progress bar on stderr (items, rate, time left) for jobs of 8 inputs or more."""
    if not enabled or total < 8:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm comes with huggingface_hub; without it, no bar
        return None
    return tqdm(total=total, desc=what, file=sys.stderr, unit="input")


class _Overlays:
    """Segmentation results as JSON: the masks become one overlay PNG per input, the rest stays."""

    def __init__(self, folder: Path, task: str) -> None:
        self.folder = folder
        self.task = task
        self.used: set[Path] = set()

    def record(self, value: Any, result: Any) -> dict[str, Any]:
        if self.task != "image-segmentation":
            return {"output": result}
        segments = [{k: v for k, v in s.items() if k != "mask"} for s in result]
        overlay = self._path(Path(str(value)).stem)
        _write_overlay(value, [s["mask"] for s in result], overlay)
        return {"output": segments, "overlay": str(overlay)}

    def _path(self, stem: str) -> Path:
        """``<stem>.segmentation.png``; inputs sharing a stem get ``-2``, ``-3``... suffixes."""
        path = self.folder / f"{stem}.segmentation.png"
        n = 1
        while path in self.used:
            n += 1
            path = self.folder / f"{stem}-{n}.segmentation.png"
        self.used.add(path)
        return path


def _write_overlay(source: Any, masks: list[Any], path: Path) -> None:
    """Blend one colour per segment over the photo and save it as a PNG, atomically."""
    import io

    import numpy as np
    from PIL import Image

    from plugformers.pipelines.vision import load_image
    from plugformers.utils.io import atomic_write_bytes

    image = np.asarray(load_image(source), dtype=np.float32)
    colors = np.random.default_rng(0).integers(0, 255, size=(len(masks) + 1, 3)).astype(np.float32)
    painted = image.copy()
    for n, mask in enumerate(masks):
        inside = np.asarray(mask) > 0
        painted[inside] = colors[n]
    blended = (0.5 * image + 0.5 * painted).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(blended).save(buffer, format="PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())


def _print(task: str, records: list[dict[str, Any]], elapsed: float, args: argparse.Namespace, *, timing: bool) -> None:
    if args.json:
        print(json.dumps({"task": task, "results": records, "seconds": round(elapsed, 3)}, indent=2, default=_jsonable))
        return
    for record in records:
        print(_line(task, record))
    if timing:  # a failure's summary takes its place on stderr
        print(f"({task}, {len(records)} input(s), {elapsed:.2f} s on {args.device})", file=sys.stderr)


def _line(task: str, record: dict[str, Any]) -> str:
    """One terminal line per result."""
    shown = record["input"]
    if isinstance(shown, dict):
        shown = shown.get("question", json.dumps(shown, ensure_ascii=False))
    if "error" in record:
        return f"{shown}: ERROR {record['error']}"
    out = record["output"]
    if task in ("text-classification", "image-classification", "audio-classification"):
        entries = out if isinstance(out, list) else [out]
        return f"{shown}: " + ", ".join(f"{e['label']} ({e['score']:.3f})" for e in entries)
    if task == "zero-shot-classification":
        return f"{shown}: " + ", ".join(f"{label} ({score:.3f})" for label, score in zip(out["labels"], out["scores"]))
    if task == "fill-mask":
        masks = out if out and isinstance(out[0], list) else [out]
        return f"{shown}: " + " | ".join(", ".join(f"{c['token_str']} ({c['score']:.3f})" for c in m) for m in masks)
    if task == "token-classification":
        return f"{shown}: " + " ".join(f"{e['word']}/{e.get('entity', e.get('entity_group'))}" for e in out)
    if task == "question-answering":
        answer = out["answer"] if isinstance(out, dict) else out[0]["answer"]
        return f"{shown} -> {answer}"
    if task == "automatic-speech-recognition":
        return f"{shown}: {out['text']}"
    if task == "image-segmentation":
        return f"{shown}: {', '.join(s['label'] for s in out) or '-'} (overlay: {record['overlay']})"
    import numpy as np

    return f"{shown}: {'x'.join(map(str, np.shape(out)))} values"
