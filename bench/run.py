"""Benchmark plugformers against the reference library on the same checkpoints and inputs.

Usage: ``python bench/run.py [--quick] [--families distilbert,vit] [--threads N]`` (``nox -s bench`` runs it in
a venv with the host, every plugin, the reference library and matplotlib). Every measurement that depends on
process state runs in a fresh interpreter, the two implementations alternate, and each figure is the median
of several runs after a warm-up. Results go to ``bench/results/<machine>-<date>.json``, ``latest.md``,
``latest.png`` and the table in ``docs/performance.md``. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _deploy import SHAPES as DEPLOY_SHAPES  # noqa: E402
from _deploy import render as render_deploy  # noqa: E402
from _families import FAMILIES, PHOTO_HW, SPECS  # noqa: E402
from _report import DEPLOY_MARKERS, build_rows, render_markdown, update_docs, write_chart  # noqa: E402

WORKER = BENCH / "_worker.py"
RESULT_MARK = "BENCH_RESULT "
IMPLS = ("ours", "reference")


@dataclass(frozen=True)
class Settings:
    """How much work each section does; ``QUICK`` is a smoke run of every code path."""

    import_reps: int
    load_reps: int
    warmup: bool
    forward_min_reps: int
    forward_max_reps: int
    forward_budget_s: float
    big_batch: bool
    sentences: int
    tokenizer_reps: int
    images: int
    image_reps: int
    deploy_min_reps: int
    deploy_max_reps: int
    deploy_budget_s: float
    pipeline_sentences: int = 2000
    pipeline_reps: int = 1


# Forward: 5 to 11 alternating runs of each (fewer left ratios swinging +-10% between runs). Loading: 3, after an
# untimed round that warms the page cache (else whichever loads a checkpoint first pays for the disk).
FULL = Settings(4, 3, True, 5, 11, 45.0, True, 10_000, 3, 64, 2, 3, 9, 60.0)
QUICK = Settings(2, 1, False, 2, 2, 1.0, False, 1_000, 2, 8, 1, 1, 1, 1.0, pipeline_sentences=200)


class BenchError(RuntimeError):
    """A worker process failed; the message carries the end of its output."""


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def run_worker(task: str, args: dict[str, Any], timeout: float = 1200) -> dict[str, Any]:
    """Run one measurement in a fresh interpreter and return its JSON result."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TRANSFORMERS_VERBOSITY": "error", "HF_HUB_OFFLINE": "1"}
    env.setdefault("TOKENIZERS_PARALLELISM", "true")
    proc = subprocess.run(
        [sys.executable, str(WORKER), task, json.dumps(args)],
        capture_output=True, text=True, timeout=timeout, env=env,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr + proc.stdout)[-2000:]
        raise BenchError(f"worker {task} {args} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def alternating(task: str, base: dict[str, Any], reps: int, warmup: bool) -> dict[str, list[dict[str, Any]]]:
    """Fresh-process runs of ``task`` for both implementations, alternating which goes first."""
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLS}
    for rep in range(reps + (1 if warmup else 0)):
        order = IMPLS if rep % 2 == 0 else IMPLS[::-1]
        for impl in order:
            result = run_worker(task, {**base, "impl": impl})
            if warmup and rep == 0:
                continue  # the first round only warms the page cache and the interpreter's byte-code cache
            runs[impl].append(result)
    return runs


def summarise(runs: dict[str, list[dict[str, Any]]], keys: list[str]) -> dict[str, Any]:
    return {
        impl: {"runs": items, **{f"median_{k}": _median([r[k] for r in items]) for k in keys}}
        for impl, items in runs.items()
    }


def machine_info(threads: int, name: str | None) -> dict[str, Any]:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("plugformers", "transformers", "torch", "tokenizers", "safetensors", "numpy", "pillow"):
        try:
            from importlib.metadata import version

            versions[pkg] = version(pkg)
        except Exception:
            versions[pkg] = None
    gpu = None
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True)
        gpu = smi.stdout.strip() or None
    except OSError:
        pass
    import torch

    from plugformers import fast_path
    from plugformers.precision import cpu_support

    raw = name or platform.node() or "machine"
    return {
        "name": re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)[:40],
        "cpu": cpu,
        # The vector instruction set torch dispatches to; it decides whether the fast path uses oneDNN.
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "fast_path_onednn": fast_path.onednn_preferred(),
        # What bfloat16 and int8 run on here (bf16 matrix instructions, 8-bit dot products), for the deploy table.
        "reduced_precision": cpu_support().describe(),
        "cpu_count": os.cpu_count(),
        "threads": threads,
        "gpu": gpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: batch 1 only, one run of each (~2-3 min)")
    parser.add_argument("--families", default=",".join(FAMILIES), help="comma-separated subset of " + ",".join(FAMILIES))
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch.set_num_threads for every measurement (default 1: stable on a shared, oversubscribed machine)",
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "plugformers-bench",
        help="where the reference writes the shared checkpoints (kept between runs)",
    )
    parser.add_argument("--results-dir", type=Path, default=BENCH / "results")
    parser.add_argument("--docs", type=Path, default=BENCH.parent / "docs" / "performance.md")
    parser.add_argument("--machine", default=None, help="machine name used in the results file name")
    parser.add_argument(
        "--skip", default="", help="comma-separated sections to skip: import,load,forward,tokenizer,image,deploy,gpu,pipeline"
    )
    parser.add_argument(
        "--deploy-threads", type=int, default=2,
        help="threads on every side in the deployment section (default 2, as the issue asks)",
    )
    parser.add_argument("--gpu-dry-run", action="store_true", help="run the GPU section's code on the CPU, tiny")
    parser.add_argument("--load-reps", type=int, default=None, help="override the from_pretrained repetitions")
    parser.add_argument("--forward-budget", type=float, default=None, help="override seconds per forward shape")
    parser.add_argument("--no-publish", action="store_true", help="do not update latest.md/latest.png/docs")
    parser.add_argument("--pipeline-sentences", type=int, default=None, help="override the pipeline section's corpus size")
    parser.add_argument("--pipeline-reps", type=int, default=None, help="override the pipeline section's rounds")
    parser.add_argument("--corpus", default=None, help="folder of .txt files the pipeline corpus is cut from")
    parser.add_argument("--pipeline-scaling", type=int, default=0, metavar="N",
                        help="also time `plugformers predict` in 1 process against torchrun with N processes")
    args = parser.parse_args(argv)
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = sorted(set(families) - set(FAMILIES))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {FAMILIES}")
    if args.threads < 1:
        parser.error("--threads must be >= 1")
    args.family_list = families
    args.skip_set = {s.strip() for s in args.skip.split(",") if s.strip()}
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings = QUICK if args.quick else FULL
    if args.load_reps is not None:
        settings = replace(settings, load_reps=max(1, args.load_reps))
    if args.pipeline_sentences is not None:
        settings = replace(settings, pipeline_sentences=max(32, args.pipeline_sentences))
    if args.pipeline_reps is not None:
        settings = replace(settings, pipeline_reps=max(1, args.pipeline_reps))
    if args.forward_budget is not None:
        settings = replace(settings, forward_budget_s=args.forward_budget, forward_max_reps=max(settings.forward_max_reps, 9))
    started = time.time()
    from importlib.metadata import version

    # Versions through metadata: this process stays small, since workers start as forks of it.
    ckpt_root = args.cache_dir / f"transformers-{version('transformers')}"
    result: dict[str, Any] = {
        "date": _dt.datetime.now().isoformat(timespec="seconds"),
        "mode": "quick" if args.quick else "full",
        "machine": machine_info(args.threads, args.machine),
        "load_average_start": os.getloadavg(),
        "settings": settings.__dict__,
        "checkpoints": str(ckpt_root),
        "families": {f: {"note": SPECS[f].note} for f in args.family_list},
    }
    log(f"machine {result['machine']['cpu']} x{result['machine']['cpu_count']}, threads {args.threads}, "
        f"load average {result['load_average_start']}")

    log(f"preparing reference checkpoints in {ckpt_root}")
    wants_tokenizer = "tokenizer" not in args.skip_set or "pipeline" not in args.skip_set
    run_worker("prepare", {"dir": str(ckpt_root), "families": args.family_list, "tokenizer": wants_tokenizer})

    if "import" not in args.skip_set:
        log("import overhead over `import torch` (fresh processes)")
        runs = alternating("import", {}, settings.import_reps, warmup=not args.quick)
        result["import"] = summarise(runs, ["seconds", "rss_mb"])

    for family in args.family_list:
        entry = result["families"][family]
        ckpt = str(ckpt_root / family)
        if "load" not in args.skip_set:
            log(f"{family}: from_pretrained (fresh processes)")
            base = {"family": family, "checkpoint": ckpt, "threads": args.threads}
            runs = alternating("load", base, settings.load_reps, settings.warmup)
            entry["load"] = summarise(runs, ["seconds", "rss_delta_mb", "rss_touched_delta_mb", "rss_peak_mb"])
        if "forward" not in args.skip_set:
            spec = SPECS[family]
            batches = [1, spec.batch] if settings.big_batch else [1]
            log(f"{family}: forward latency, batches {batches}")
            entry["forward"] = run_worker("forward", {
                "family": family, "checkpoint": ckpt, "threads": args.threads, "batches": batches,
                "min_reps": settings.forward_min_reps, "max_reps": settings.forward_max_reps,
                "budget_s": settings.forward_budget_s,
            })
        if "image" not in args.skip_set and SPECS[family].image_processor:
            log(f"{family}: image processor throughput ({settings.images} images {PHOTO_HW[1]}x{PHOTO_HW[0]})")
            entry["image_processor"] = run_worker("image", {
                "family": family, "checkpoint": ckpt, "threads": args.threads,
                "images": settings.images, "reps": settings.image_reps,
            })

    if "tokenizer" not in args.skip_set:
        log(f"fast tokenizer throughput ({settings.sentences} sentences)")
        result["tokenizer"] = run_worker("tokenizer", {
            "dir": str(ckpt_root / "tokenizer"), "threads": args.threads,
            "sentences": settings.sentences, "reps": settings.tokenizer_reps,
        })

    if "pipeline" not in args.skip_set:
        result["pipeline"] = pipeline_section(ckpt_root, settings, args)

    if "deploy" not in args.skip_set:
        result["deploy"] = deploy_section(args, settings, ckpt_root)

    if "gpu" not in args.skip_set:
        gpu_args: dict[str, Any] = {"dir": str(ckpt_root), "families": args.family_list}
        if args.gpu_dry_run:
            gpu_args.update({
                "device": "cpu", "warmup": 1, "reps": 1, "matmul_n": 256, "modes": ["eager", "sdpa"],
                "large_batch": {f: 2 for f in FAMILIES}, "tflops_batch": {"vit": 1, "distilbert": 1},
                "device_map_check": True,
            })
        log("GPU section" + (" (dry run on the CPU)" if args.gpu_dry_run else ""))
        result["gpu"] = run_worker("gpu", gpu_args, timeout=3600)
        if "skipped" in result["gpu"]:
            log(result["gpu"]["skipped"])

    result["load_average_end"] = os.getloadavg()
    result["wall_s"] = time.time() - started
    raw = args.results_dir / "last-raw.json"
    args.results_dir.mkdir(parents=True, exist_ok=True)
    raw.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")  # kept if the report below fails
    result["rows"] = build_rows(result)
    write_outputs(result, args)
    raw.unlink()
    log(f"done in {result['wall_s']:.0f} s")
    return 0


def pipeline_section(ckpt_root: Path, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Issue 19: pipeline throughput at batch 32 and batch-1 latency, ours in three batchings and the others.

    The implementations run in fresh processes, in rotating order, ``pipeline_reps`` rounds each.
    """
    from _pipelines import max_sample_diff

    info = run_worker("pipeline_prepare", {"dir": str(ckpt_root)})
    section: dict[str, Any] = {"model": info["model"], "family": info["family"], "vocabulary": info["vocabulary"],
                               "batch": 32, "tasks": {}}
    try:
        import sentence_transformers  # noqa: F401

        has_st = True
    except ImportError:
        has_st = False
    for task, folder in info["checkpoints"].items():
        impls = ["ours", "reference", "ours_padded", "ours_bucketed"]
        if task == "sentence-embeddings" and has_st:
            impls.append("sentence_transformers")
        log(f"pipeline {task} ({info['model']}): {settings.pipeline_sentences} texts, batch 32, {impls}")
        runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in impls}
        for rep in range(settings.pipeline_reps):
            for impl in impls[rep % len(impls):] + impls[: rep % len(impls)]:
                runs[impl].append(run_worker("pipeline", {
                    "task": "feature-extraction" if task == "sentence-embeddings" else task, "checkpoint": folder,
                    "impl": impl, "batch": 32, "threads": args.threads, "sentences": settings.pipeline_sentences,
                    "corpus": args.corpus,
                }, timeout=7200))
                log(f"  {impl}: {runs[impl][-1]['throughput']:.1f} texts/s")
        entry = summarise(runs, ["throughput"])
        first = runs["ours"][0]
        entry["corpus"] = {"source": first["corpus"], "sentences": first["sentences"], "tokens": first["tokens"]}
        entry["latency"] = run_worker("pipeline_latency", {
            "task": "feature-extraction" if task == "sentence-embeddings" else task, "checkpoint": folder,
            "threads": args.threads, "budget_s": 5.0 if args.quick else 30.0,
        })
        log(f"  batch-1 latency (alternating, one process): {entry['latency']['median_s']}")
        entry["max_abs_diff"] = {impl: max_sample_diff(runs[impl][0]["sample"], first["sample"]) for impl in impls if impl != "ours"}
        for items in runs.values():
            for run in items:
                run.pop("sample")  # compared above; the outputs themselves need not be kept
        section["tasks"][task] = entry
    if args.pipeline_scaling:
        log(f"predict: 1 process against torchrun with {args.pipeline_scaling} ({settings.pipeline_sentences} texts)")
        section["scaling"] = run_worker("predict_scaling", {
            "checkpoint": info["checkpoints"]["text-classification"], "sentences": settings.pipeline_sentences,
            "threads": args.threads, "procs": [1, args.pipeline_scaling], "corpus": args.corpus,
        }, timeout=7200)
    return section


def deploy_section(args: argparse.Namespace, settings: Settings, ckpt_root: Path) -> dict[str, Any]:
    """Reduced precision and ONNX Runtime at the deployment shapes (``bench/_deploy.py``)."""
    shapes = [s for s in DEPLOY_SHAPES if s[0] in args.family_list]
    section: dict[str, Any] = {"threads": args.deploy_threads, "shapes": []}
    for family in sorted({s[0] for s in shapes}):
        log(f"{family}: exporting to ONNX (verified) and quantizing with onnxruntime")
        section.setdefault("exports", {})[family] = info = run_worker("deploy_export", {
            "checkpoint": str(ckpt_root / family), "dir": str(ckpt_root / "onnx" / family),
        })
        section["onnxruntime"] = info["onnxruntime"]
    for family, batch, length in shapes:
        log(f"{family}: deployment latency {batch}x{length}, {args.deploy_threads} threads, every precision")
        section["shapes"].append(run_worker("deploy", {
            "family": family, "batch": batch, "length": length, "threads": args.deploy_threads,
            "checkpoint": str(ckpt_root / family), "onnx_dir": str(ckpt_root / "onnx" / family),
            "min_reps": settings.deploy_min_reps, "max_reps": settings.deploy_max_reps,
            "budget_s": settings.deploy_budget_s,
        }, timeout=3600))
    section["load_average"] = os.getloadavg()
    return section


def write_outputs(result: dict[str, Any], args: argparse.Namespace) -> None:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{result['machine']['name']}-{result['date'][:10]}" + ("-quick" if args.quick else "")
    json_path = args.results_dir / f"{stem}.json"
    json_path.write_text(json.dumps(result, indent=1, sort_keys=True) + "\n")
    markdown = render_markdown(result)
    print(markdown)
    log(f"wrote {json_path}")
    deploy = render_deploy(result["deploy"]) if result.get("deploy", {}).get("shapes") else None
    if deploy is not None:
        print(deploy)
    if args.no_publish or args.quick:
        (args.results_dir / f"{stem}.md").write_text(markdown + ("\n" + deploy if deploy else ""))
        return
    if deploy is not None:
        (args.results_dir / "deploy-latest.md").write_text(deploy)
        for doc in (args.docs, args.docs.parent / "deployment.md"):
            if doc.exists():
                update_docs(doc, deploy, DEPLOY_MARKERS)
                log(f"updated the deployment table in {doc}")
    if not result["rows"]:
        return  # only the deployment section ran: the main table keeps its last full run
    (args.results_dir / "latest.md").write_text(markdown)
    chart = args.results_dir / "latest.png"
    if write_chart(result, chart):
        log(f"wrote {chart}")
    if args.docs.exists():
        update_docs(args.docs, markdown)
        log(f"updated {args.docs}")


if __name__ == "__main__":
    sys.exit(main())
