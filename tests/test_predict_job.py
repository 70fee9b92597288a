"""``plugformers predict`` as a batch job: where inputs come from, the JSONL output, resuming, and bad inputs.

The job must lose nothing: every input gets exactly one line (a result or an error record), an interrupted
run resumes without redoing what is written, and one bad input does not stop the others.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from pipeline_checkpoints import audio_classifier_checkpoint, photo, text_checkpoint, tone, vit_checkpoint

from plugformers.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("plugformers_distilbert")
    folder = tmp_path_factory.mktemp("cls") / "model"
    return text_checkpoint(folder, "DistilBertForSequenceClassification", id2label={0: "neg", 1: "pos"})


def _lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["predict", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_text_inputs_from_arguments_files_stdin_and_jsonl(classifier, tmp_path, capsys, monkeypatch):
    (tmp_path / "texts.txt").write_text("john lives in paris\n\na fox\n", encoding="utf-8")
    records = [{"id": "doc-7", "text": "the lazy dog"}, {"text": "who works at acme"}, {"id": "doc-9", "body": "x"}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "{not json\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("from stdin\n"))
    out = tmp_path / "out.jsonl"
    code, _, err = _run(capsys, str(classifier), "an argument", "-", "--input-file", str(tmp_path / "texts.txt"),
                        "--input-jsonl", str(tmp_path / "in.jsonl"), "--output", str(out), "--batch-size", "2")
    assert code == 1  # two JSONL lines are bad: reported, and the exit code says so
    lines = _lines(out)
    assert [r["id"] for r in lines] == [0, 1, 2, 3, "doc-7", 5, "doc-9", 7]
    assert [r["input"] for r in lines[:6]] == ["an argument", "from stdin", "john lives in paris", "a fox", "the lazy dog",
                                                "who works at acme"]
    assert all(set(r) == {"id", "input", "output"} and r["output"][0]["label"] in {"neg", "pos"} for r in lines[:6])
    assert lines[6]["error"] == "line 3 has no field 'text'"
    assert lines[7]["error"].startswith("line 4 is not JSON")
    assert "2 of 8 input(s) failed" in err
    # Each line is the same result the pipeline gives for that input alone.
    from plugformers import pipeline

    expected = pipeline("text-classification", model=classifier)("the lazy dog", top_k=3)
    assert [e["label"] for e in lines[4]["output"]] == [e["label"] for e in expected]
    assert [e["score"] for e in lines[4]["output"]] == pytest.approx([e["score"] for e in expected], abs=1e-5)


def test_resume_skips_what_is_written_and_redoes_a_cut_line(classifier, tmp_path, capsys):
    texts = [f"the fox number {n}" for n in range(12)]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    full = tmp_path / "full.jsonl"
    assert _run(capsys, str(classifier), "--input-file", str(tmp_path / "texts.txt"), "--output", str(full))[0] == 0
    complete = full.read_text(encoding="utf-8").splitlines()
    # An interrupted run: five whole lines, the sixth cut short. One kept line is marked to prove it is not redone.
    cut = tmp_path / "cut.jsonl"
    kept = [json.loads(line) for line in complete[:5]]
    kept[2]["output"] = "written before the interruption"
    cut.write_text("".join(json.dumps(r) + "\n" for r in kept) + complete[5][:20], encoding="utf-8")
    code, _, err = _run(capsys, str(classifier), "--input-file", str(tmp_path / "texts.txt"), "--output", str(cut))
    assert code == 1 and "--resume" in err  # never appends to an existing file by accident
    code, _, err = _run(capsys, str(classifier), "--input-file", str(tmp_path / "texts.txt"), "--output", str(cut), "--resume")
    assert code == 0 and "(7 input(s)" in err
    lines = _lines(cut)
    assert [r["id"] for r in lines] == list(range(12))
    assert lines[2]["output"] == "written before the interruption"
    assert [json.dumps(r) for r in lines[5:]] == [json.dumps(json.loads(line)) for line in complete[5:]]
    assert _run(capsys, str(classifier), "--input-file", str(tmp_path / "texts.txt"), "--output", str(cut), "--resume")[0] == 0
    assert len(_lines(cut)) == 12  # a finished job resumed does nothing


def test_bad_inputs_get_error_records_and_fail_fast_stops(classifier, tmp_path, capsys):
    out = tmp_path / "out.jsonl"
    code, _, err = _run(capsys, str(classifier), "a fox", "  ", "the dog", "--output", str(out))
    assert code == 1 and "1 of 3 input(s) failed" in err and "empty text" in err
    assert [("error" in r, r["id"]) for r in _lines(out)] == [(False, 0), (True, 1), (False, 2)]
    stop = tmp_path / "stop.jsonl"
    code, _, err = _run(capsys, str(classifier), "a fox", "", "the dog", "--output", str(stop), "--fail-fast")
    assert code == 1 and "stopped (--fail-fast)" in err
    assert [r["id"] for r in _lines(stop)] == [0, 1]


def test_image_folders_globs_workers_and_unreadable_files(tmp_path, capsys):
    pytest.importorskip("plugformers_vit")
    model = vit_checkpoint(tmp_path / "vit")
    shots = tmp_path / "shots"
    (shots / "nested").mkdir(parents=True)
    for i, name in enumerate(["b.png", "a.jpg", "nested/c.png"]):
        photo(shots / name, seed=i)
    (shots / "notes.txt").write_text("not an image")
    (shots / "broken.png").write_bytes(b"not a png")
    serial = tmp_path / "serial.jsonl"
    code, _, err = _run(capsys, str(model), str(shots), "--output", str(serial), "--top-k", "2")
    assert code == 1 and "broken.png" in err
    lines = _lines(serial)
    assert [Path(r["input"]).name for r in lines] == ["a.jpg", "b.png", "broken.png", "c.png"]  # sorted, no .txt
    assert "error" in lines[2] and all(len(r["output"]) == 2 for i, r in enumerate(lines) if i != 2)
    threaded = tmp_path / "threaded.jsonl"
    _run(capsys, str(model), str(shots / "**" / "*.png"), str(shots / "a.jpg"), "--output", str(threaded),
         "--top-k", "2", "--num-workers", "2", "--batch-size", "3")
    by_input = {r["input"]: r for r in _lines(threaded)}
    assert [Path(p).name for p in by_input] == ["b.png", "broken.png", "c.png", "a.jpg"]
    for record in lines:
        other = by_input[record["input"]]
        assert ("error" in other) == ("error" in record)
        if "error" not in record:
            assert [e["label"] for e in other["output"]] == [e["label"] for e in record["output"]]
            assert [e["score"] for e in other["output"]] == pytest.approx([e["score"] for e in record["output"]], abs=1e-5)
    assert main(["predict", str(model), str(tmp_path / "nothing-*.png")]) == 1
    assert "matches no file" in capsys.readouterr().err


def test_audio_job_reports_a_corrupt_wav_and_goes_on(tmp_path, capsys):
    pytest.importorskip("plugformers_wav2vec2")
    from plugformers.audio_utils import write_wav

    model = audio_classifier_checkpoint(tmp_path / "kws")
    clips = tmp_path / "clips"
    clips.mkdir()
    write_wav(clips / "one.wav", tone(0.3), 16000)
    write_wav(clips / "two.wav", tone(0.5, freq=330), 16000)
    (clips / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    out = tmp_path / "out.jsonl"
    code, _, _ = _run(capsys, str(model), str(clips), "--output", str(out), "--batch-size", "2")
    lines = _lines(out)
    assert code == 1 and [Path(r["input"]).name for r in lines] == ["bad.wav", "one.wav", "two.wav"]
    assert "bad.wav" in lines[0]["error"] and all(r["output"][0]["label"] in {"yes", "no", "up"} for r in lines[1:])


def test_task_options_reach_the_pipeline(tmp_path, capsys):
    pytest.importorskip("plugformers_distilbert")
    from plugformers.pipelines.base import PipelineItemError  # noqa: F401 - the module is importable without torchrun

    nli = text_checkpoint(tmp_path / "nli", "DistilBertForSequenceClassification",
                          id2label={0: "contradiction", 1: "neutral", 2: "entailment"})
    code, out, _ = _run(capsys, str(nli), "john lives in paris", "--task", "zero-shot-classification",
                        "--candidate-labels", "city,animal", "--json")
    assert code == 0 and sorted(json.loads(out)["results"][0]["output"]["labels"]) == ["animal", "city"]
    base = text_checkpoint(tmp_path / "base", "DistilBertModel")
    code, out, _ = _run(capsys, str(base), "the lazy dog", "--pooling", "mean", "--normalize", "--json")
    (vector,) = [r["output"] for r in json.loads(out)["results"]]
    assert code == 0 and len(vector) == 32 and sum(v * v for v in vector) == pytest.approx(1.0, abs=1e-5)
    assert main(["predict", str(nli), "a fox", "--task", "zero-shot-classification"]) == 1
    assert "--candidate-labels" in capsys.readouterr().err
