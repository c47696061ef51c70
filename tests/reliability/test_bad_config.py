"""Bad configs through ``tadformer train``: one line naming the file, the key and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest
from rel_helpers import (
    assert_error,
    one_thread,  # noqa: F401  (autouse)
    run_cli,
    sets,
)


def _edit(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


# edit of the generated YAML -> (exit code, expected fragments)
YAML_CASES = {
    "unknown_top_key": (lambda t: t + "\nlearning_rate: 0.1\n", ("unknown config key 'learning_rate'",)),
    "unknown_nested_key": (lambda t: _edit(t, "  n_mha_win_size: 19", "  n_mha_win_size: 19\n  n_mha_win: 3"),
                           ("unknown config key 'model.n_mha_win'", "did you mean 'model.n_mha_win_size'?")),
    "wrong_type": (lambda t: _edit(t, "batch_size: 2", "batch_size: two"),
                   ("config key 'loader.batch_size': expected int, got str 'two'",)),
    "wrong_type_list": (lambda t: _edit(t, "- 0.9\n  - 1.0", "- 0.9"), ("config key 'dataset.crop_ratio'",)),
    "impossible_value": (lambda t: _edit(t, "batch_size: 2", "batch_size: 0"), ("loader.batch_size = 0 must be >= 1",)),
    "negative_lr": (lambda t: _edit(t, "learning_rate: 0.0001", "learning_rate: -0.1"),
                    ("opt.learning_rate = -0.1 must be > 0",)),
    "malformed_yaml": (lambda t: t + "\nmodel: {fpn_type: [identity\n", ("malformed YAML at line",)),
    "empty_file": (lambda t: "", ("the config file is empty",)),
    "top_level_list": (lambda t: "- 1\n- 2\n", ("expected a mapping at the top level, got list",)),
    "section_not_mapping": (lambda t: t + "\ntest_cfg: 3\n", ("test_cfg",)),
}


@pytest.mark.parametrize("case", sorted(YAML_CASES))
def test_bad_yaml(case: str, tiny_synth, tmp_path: Path, capsys) -> None:
    edit, fragments = YAML_CASES[case]
    config = tmp_path / "config.yaml"
    config.write_text(edit(tiny_synth.config_file.read_text()))
    code, err = run_cli(["train", str(config), "--out", str(tmp_path / "run"), "--device", "cpu"], capsys)
    assert_error(code, err, 2, str(config), *fragments)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("override", "fragments"),
    [
        ("dataset.max_seq_len=1000", ("dataset.max_seq_len = 1000 must be divisible", "multiples of 576",
                                      "nearest: 576, 1152")),
        ("model.n_mha_win_size=[19,19]", ("model.n_mha_win_size has 2 entries", "1 + backbone_arch[2] = 6")),
        ("model.n_head=5", ("model.n_head = 5 must divide model.embd_dim = 16",)),
        ("opt.learnin_rate=1e-3", ("did you mean 'opt.learning_rate'?",)),
        ("opt.learning_rate", ("expected 'section.key=value'",)),
        ("opt.learning_rate=fast", ("expected number, got str 'fast'",)),
        ("model.input_dim=32", ("'model.input_dim' is derived; set 'dataset.input_dim' instead",)),
        ("test_cfg.nms_method=fancy", ("test_cfg.nms_method", "one of 'soft', 'hard', 'none'")),
    ],
)
def test_bad_override(override: str, fragments: tuple[str, ...], tiny_synth, tmp_path: Path, capsys) -> None:
    code, err = run_cli(["train", str(tiny_synth.config_file), "--out", str(tmp_path / "run"), "--device", "cpu",
                         *sets(override)], capsys)
    assert_error(code, err, 2, *fragments)


def test_missing_or_folder_config(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "nope.yaml"
    assert_error(*run_cli(["train", str(missing)], capsys), 1, "config file not found", str(missing))
    code, err = run_cli(["train", str(tmp_path)], capsys)
    assert_error(code, err, 1, str(tmp_path))


def test_input_dim_that_does_not_match_the_features(tiny_synth, tmp_path: Path, capsys) -> None:
    code, err = run_cli(["train", str(tiny_synth.config_file), "--out", str(tmp_path / "run"), "--no-progress",
                         "--device", "cpu", *sets("dataset.input_dim=32"), "--max-steps", "1"], capsys)
    assert_error(code, err, 2, "found C=16 channels but input_dim=32", str(tiny_synth.feat_folder))


def test_bad_device(tiny_synth, tmp_path: Path, capsys) -> None:
    code, err = run_cli(["train", str(tiny_synth.config_file), "--out", str(tmp_path / "run"), *sets(),
                         "--device", "tpu"], capsys)
    assert_error(code, err, 2, "'tpu'")
