"""Error analysis (hand-worked fake run, golden metrics cases) and the report build."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_run import PREDICTIONS, ground_truth_dict, make_fake_run, predictions_dict

from tadformer.cli import main
from tadformer.metrics import interpolated_ap
from tadformer.report.analysis import (
    Matching,
    class_pr_curve,
    false_positive_analysis,
    match_predictions,
    missed_by_length,
    per_video_ap,
    pick_videos,
)
from tadformer.report.build import MissingRunFileError, build_report, read_train_log

SECTIONS = ("Configuration", "Training curves", "Detection mAP", "mAP vs tIoU", "Per-class AP",
            "Precision-recall curves", "Timelines", "Score distribution", "Error analysis")


@pytest.fixture()
def fake_run(tmp_path: Path) -> Path:
    """A complete fake run directory (config, class names, train log, eval, eval_regular); see fake_run.py."""
    return make_fake_run(tmp_path)


@pytest.fixture(scope="module")
def built_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fake run with its report built once through the CLI (``tadformer report RUN_DIR``)."""
    run = make_fake_run(tmp_path_factory.mktemp("built"))
    assert main(["report", str(run)]) == 0
    return run


def _fake_matching() -> Matching:
    return match_predictions(ground_truth_dict(), predictions_dict(PREDICTIONS), "test")


def _row(video: str, score: float) -> int:
    """Flattened index of the prediction of ``video`` with ``score`` (JSON order)."""
    flat = [(v, p) for v, rows in PREDICTIONS.items() for *_, p in rows]
    return flat.index((video, score))


def test_false_positive_categories_by_hand() -> None:
    fpa = false_positive_analysis(_fake_matching(), tiou=0.5, top_factor=10)
    got = dict(zip(fpa.rows.tolist(), fpa.categories.tolist()))
    expected = {  # worked out in tests/report/conftest.py
        _row("v1", 0.9): "true_positive", _row("v1", 0.8): "double_detection", _row("v1", 0.7): "wrong_label",
        _row("v1", 0.6): "localization", _row("v1", 0.5): "background", _row("v2", 0.85): "confusion",
        _row("v2", 0.4): "true_positive", _row("v5", 0.95): "background",
    }
    assert got == expected
    assert fpa.counts() == {"true_positive": 2, "double_detection": 1, "wrong_label": 1, "localization": 1,
                            "confusion": 1, "background": 2}


def test_top_factor_limits_analysed_predictions() -> None:
    # factor 1: Jump (G=2) keeps h 0.95 and a 0.9; Run (G=2) keeps c and d; Throw (G=1) keeps f 0.85
    fpa = false_positive_analysis(_fake_matching(), tiou=0.5, top_factor=1)
    assert sorted(fpa.rows.tolist()) == sorted([_row("v5", 0.95), _row("v1", 0.9), _row("v1", 0.7),
                                                _row("v1", 0.6), _row("v2", 0.85)])


def test_missed_by_length_by_hand() -> None:
    missed = missed_by_length(_fake_matching(), tiou=0.5)
    assert missed.bins == ("XS", "S", "M", "L", "XL")
    assert missed.num_gt.tolist() == [1, 1, 2, 0, 1]  # Run v3 2 s; Throw v2 5 s; two 10 s; Jump v2 20 s
    assert missed.num_missed.tolist() == [1, 1, 1, 0, 0]  # Run v3, Throw v2, Run v1 (best tIoU 0.4)
    at_03 = missed_by_length(_fake_matching(), tiou=0.3)
    assert at_03.num_missed.tolist() == [1, 1, 0, 0, 0]  # d matches Run v1 at 0.3


def test_per_video_ap_by_hand() -> None:
    # v1: Jump AP 1 (a TP then b FP); Run: c FP then d, TP at 0.3 and 0.4 only -> AP .5 twice of 5 -> 0.2
    #     -> (1 + 0.2) / 2 = 0.6.  v2: Jump 1, Throw 0 -> 0.5.  v3: Run without predictions -> 0.
    ap = per_video_ap(_fake_matching())
    assert set(ap) == {"v1", "v2", "v3"}
    np.testing.assert_allclose([ap["v1"], ap["v2"], ap["v3"]], [0.6, 0.5, 0.0], rtol=0, atol=1e-12)
    assert pick_videos(ap) == {"best": "v1", "median": "v2", "worst": "v3"}
    assert pick_videos({}) == {}


def test_matching_reproduces_golden_class_ap(golden_dir: Path) -> None:
    """AP from our per-prediction TP flags equals the official evaluator's, on every golden case."""
    cases = json.loads((golden_dir / "metrics_cases.json").read_text(encoding="utf-8"))["cases"]
    for case in cases:
        m = match_predictions(case["ground_truth"], case["predictions"], case["split"], case["tiou_thresholds"])
        ap = [[interpolated_ap(*class_pr_curve(m, c, t)) for c in m.class_ids.tolist()]
              for t in m.tiou_thresholds.tolist()]
        np.testing.assert_allclose(ap, case["expected"]["ap_per_class"], rtol=0, atol=1e-6, err_msg=case["name"])


def _img_sources(html: str) -> list[str]:
    return re.findall(r"<img[^>]*\ssrc=\"([^\"]*)\"", html)


def test_build_report_full_run(built_run: Path) -> None:
    fake_run = built_run
    html_path, md_path = fake_run / "report" / "report.html", fake_run / "report" / "report.md"
    html = html_path.read_text(encoding="utf-8")
    md = md_path.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert f"<h2>{title}</h2>" in html
        assert f"## {title}" in md
    sources = _img_sources(html)
    assert len(sources) == 10  # 2 training, mAP, per-class, PR, 3 timelines, histogram, error analysis
    assert all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"(src|href)=\"(?!data:)", html), "external resource in the HTML"
    assert "http://" not in html and "https://" not in html
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == 10 and all((md_path.parent / p).is_file() for p in linked)
    # mAP table: EMA and regular side by side (values from metrics.json)
    ema = json.loads((fake_run / "eval" / "metrics.json").read_text())
    assert f"| EMA | {' | '.join(f'{100 * v:.2f}' for v in ema['mAP'])} | {100 * ema['average_mAP']:.2f} |" in md
    assert "| regular |" in md
    # error analysis table and the picked videos, as worked out by hand
    assert "| double_detection | 1 | 12.5 |" in md and "| background | 2 | 25.0 |" in md
    assert "| M | (6, 12] | 2 | 1 | 50.0 |" in md
    assert "best: v1 (AP 60.0%)" in md and "worst: v3 (AP 0.0%)" in md
    assert not list((fake_run / "report").glob(".*.tmp"))


def test_build_report_optional_inputs_missing(fake_run: Path) -> None:
    """No eval_regular/, no train log, no annotation file: each section says so, nothing crashes."""
    shutil.rmtree(fake_run / "eval_regular")
    (fake_run / "train_log.jsonl").unlink()
    (fake_run.parent / "annotations.json").unlink()
    html_path, md_path = build_report(fake_run)
    md = md_path.read_text(encoding="utf-8")
    for title in SECTIONS:
        assert f"## {title}" in md
    assert "train_log.jsonl not found or empty" in md
    assert "no eval_regular/" in md and "| regular |" not in md and "| EMA |" in md
    assert md.count("was not found") == 4  # PR, timelines, scores, error analysis say why they are empty
    sources = _img_sources(html_path.read_text(encoding="utf-8"))
    assert len(sources) == 2  # mAP vs tIoU and per-class AP only


def test_read_train_log_skips_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "train_log.jsonl"
    path.write_text('{"step": 1, "cls_loss": 0.5}\n\n[1, 2]\n{"step": 2, "cls_lo', encoding="utf-8")
    assert read_train_log(path) == ([{"step": 1, "cls_loss": 0.5}], 2)  # a list row and the torn line
    assert read_train_log(tmp_path / "absent.jsonl") == ([], 0)


@pytest.mark.parametrize("name", ["metrics.json", "predictions.json"])
def test_missing_required_file_names_it_and_the_command(fake_run: Path, name: str) -> None:
    (fake_run / "eval" / name).unlink()
    with pytest.raises(MissingRunFileError, match=rf"eval/{re.escape(name)} is missing.*tadformer eval"):
        build_report(fake_run)


def test_malformed_metrics_names_the_key(fake_run: Path) -> None:
    path = fake_run / "eval" / "metrics.json"
    data: dict[str, Any] = json.loads(path.read_text())
    del data["ap_per_class"]
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"metrics.json: missing key\(s\) \['ap_per_class'\]"):
        build_report(fake_run)


def test_cli_report_error(fake_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.rmtree(fake_run / "eval")
    assert main(["report", str(fake_run)]) != 0
    assert "eval/metrics.json is missing" in capsys.readouterr().err
