"""The table definitions under experiments/: every paper number checked against the paper's
text (experiments/paper/reasonbridge-paper.txt), every row runnable by its table's sweep."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from reasonbridge.config import validate
from reasonbridge.report.specs import SpecError, load_spec, load_specs
from tests.conftest import CONF, ROOT, compose_config

PAPER = (ROOT / "experiments" / "paper" / "reasonbridge-paper.txt").read_text()
SPECS = {s.name: s for s in load_specs(ROOT / "experiments")}
NUMBER = re.compile(r"^-?\d+(\.\d+)?$")


def paper_block(first: str, last: str) -> list[str]:
    """The lines of the paper's text from the one starting with ``first`` to ``last``."""
    lines = PAPER.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith(last))
    return lines[start:end + 1]


def column_streams(lines: list[str], width: int) -> tuple[list, list]:
    """Rows (label, values) of a flattened two-column table, as the left and right columns list them.

    A row is a label cell followed by ``width`` numbers; a label followed by another label is
    a group heading. A row that starts the line is in the left column, else the right.
    """
    left, right = [], []
    for line in lines:
        cells = [c.strip() for c in line.split("|")]
        i = 0
        while i < len(cells):
            values = cells[i + 1:i + 1 + width]
            if cells[i] and not NUMBER.match(cells[i]) and len(values) == width and all(NUMBER.match(v) for v in values):
                (left if i == 0 else right).append((cells[i], [float(v) for v in values]))
                i += 1 + width
            else:
                i += 1
    return left, right


def test_table1_numbers_match_the_paper():
    spec = SPECS["table1"]
    left, right = column_streams(paper_block("Model | AIME 2024 | MATH 500 | GPQA Diamond", "s1-32B w/ BF"), 3)
    found, student = {}, None
    suffix = {"+ ReasonBridge": "reasonbridge_no_gii", "+ ReasonBridge w/ GII": "reasonbridge"}
    for label, values in left + right:
        if label in suffix:
            found[(student, suffix[label])] = values
        else:
            student = label
            found[(label, "base")] = values
    expected = {}
    for model, entry in spec.paper.items():
        for row in ("base", "reasonbridge_no_gii", "reasonbridge"):
            expected[(entry["label"], row)] = entry[row]
    for group in spec.reference_only:
        for ref in group["rows"]:
            expected[(ref["label"], "base")] = ref["values"]
    assert found == expected
    assert len(expected) == 5 * 3 + 3 + 2  # five students x three rows, three closed-source models, two s1 rows
    assert list(spec.columns) == ["aime24", "math500", "gpqa_diamond"]


def test_table2_numbers_match_the_paper():
    spec = SPECS["table2"]
    left, right = column_streams(paper_block("Model Variant | AIME 2024", "w/ Full Dataset (58K)"), 3)
    found = dict(left + right)
    paper_rows = [r for r in spec.rows if r.paper is not None]  # and three plain-SFT rows and provenance selection
    assert len(found) == 12 and len(paper_rows) == 12 and len(spec.rows) == 16
    assert {r.label: r.paper for r in paper_rows} == found
    # the text's differences agree with the table (GII vs budget forcing: 3.4 / 2.2 / 3.1)
    full, bf = spec.rows[0].paper, spec.rows[-1].paper
    assert [round(a - b, 1) for a, b in zip(full, bf)] == [3.4, 2.2, 3.1]
    assert "3.4 points on AIME24, 2.2 points on MATH500, and 3.1 points on GPQA" in PAPER


def test_table3_numbers_match_the_paper():
    spec = SPECS["table3"]
    rows = re.findall(r"^([\w.\-]+) \| (\d+) \| ([\d.]+)% \| ([\de.\-]+) \| ([\d.]+)h \|$",
                      "\n".join(paper_block("Model | Adapter Dim", "Mixtral-8x7B |")), flags=re.M)
    found = {label: {"adapter_dim": int(d), "params_modified_pct": float(p), "learning_rate": float(lr),
                     "training_hours": float(h)} for label, d, p, lr, h in rows}
    expected = {entry["label"]: entry["reasonbridge_no_gii"] for entry in spec.paper.values()}
    assert len(found) == 5 and found == expected


def test_table4_numbers_match_the_paper():
    spec = SPECS["table4"]
    lines = paper_block("Benchmark | Base Model | + ReasonBridge", "HumanEval |")[1:]
    found = {}
    for line in lines:
        label, base, rb = [c.strip() for c in line.split("|")][:3]
        found[label] = (float(base), float(rb))
    base, rb = spec.rows[0].paper, spec.rows[1].paper
    assert found == {header: (b, r) for header, b, r in zip(spec.columns.values(), base, rb)}
    gains = [r - b for b, r in zip(base, rb)]
    assert round(sum(gains) / len(gains), 1) == 8.2 and "average gain of 8.2 percentage points" in PAPER


def test_figure4_points_match_the_paper():
    spec = SPECS["scaling"]
    gii = {r.interventions: r.paper[0] for r in spec.rows if r.row.startswith("gii_") and r.paper[0] is not None}
    assert gii == {0: 41.7, 2: 45.0, 4: 46.7}
    assert f"from {gii[0]}% to {gii[2]}%, and with four interventions, it reaches {gii[4]}%" in PAPER
    assert all(r.paper == [None] for r in spec.rows if r.row.startswith("budget_forcing_"))


def sweep_rows(experiment: str) -> list[str]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"experiment={experiment}"], return_hydra_config=True)
    return str(cfg.hydra.sweeper.params["row"]).split(",")


@pytest.mark.parametrize("name", ["table1", "table2", "table3", "table4"])
def test_each_table_sweep_runs_exactly_its_rows_and_tags_them(name):
    spec = SPECS[name]
    rows = sweep_rows(name)
    assert rows == [r.row for r in spec.rows]
    for row in rows:
        cfg = compose_config([f"experiment={name}", f"row={row}"])
        validate(cfg)
        assert cfg.tracking.row == row and cfg.tracking.table == spec.sources[0]


def test_scaling_sweep_points_are_the_figure_rows():
    spec = SPECS["scaling"]
    tagged = set()
    for strategy in ("gii", "budget_forcing"):
        for k in (0, 2, 4, 6):
            cfg = compose_config(["experiment=scaling", f"inference={strategy}", f"inference.max_interventions={k}"])
            validate(cfg)
            assert cfg.adapters.name == "full" and cfg.data.name == "curated"  # the ReasonBridge-trained student
            tagged.add((cfg.tracking.row, k))
    assert tagged == {(r.row, r.interventions) for r in spec.rows}


def test_table2_rows_change_one_thing_against_the_full_method():
    """Each row against the full method: one of data, adapters, inference or the training loss as
    resolved (LoRA and full fine-tuning keep the hierarchical loss); a plain-SFT row adds the loss alone
    to a row the table has."""
    from reasonbridge.training.run import loss_for
    full = compose_config(["row=reasonbridge"])

    def changed(cfg, against) -> list[str]:
        groups = [g for g in ("data", "adapters", "inference") if cfg[g].name != against[g].name]
        return sorted(groups + (["loss"] if loss_for(cfg) != loss_for(against) else []))
    rows = {row.row: compose_config([f"row={row.row}"]) for row in SPECS["table2"].rows[1:]}
    assert {row: changed(cfg, full) for row, cfg in rows.items()} == {
        "no_quality": ["data"], "no_difficulty": ["data"], "no_diversity": ["data"], "random_data": ["data"],
        "provenance_selection": ["data"], "full_data": ["data"], "no_strategic": ["adapters"], "no_tactical": ["adapters"],
        "no_operational": ["adapters"], "no_hierarchical_loss": ["loss"], "lora": ["adapters"],
        "lora_sft": ["adapters", "loss"], "full_ft": ["adapters"], "full_ft_sft": ["adapters", "loss"],
        "budget_forcing": ["inference"]}
    assert loss_for(full) == "hierarchical" and loss_for(rows["no_hierarchical_loss"]) == "sft"
    assert changed(rows["lora_sft"], rows["lora"]) == changed(rows["full_ft_sft"], rows["full_ft"]) == ["loss"]
    bf = compose_config(["row=budget_forcing"])
    assert bf.inference.max_interventions == full.inference.max_interventions  # the same test-time budget


def test_a_broken_definition_names_the_file_and_field(tmp_path: Path):
    bad = tmp_path / "table9.yaml"
    text = (ROOT / "experiments" / "table2.yaml").read_text().replace("paper: [36.7, 85.4, 51.5]", "paper: [36.7]")
    bad.write_text(text)
    with pytest.raises(SpecError, match=r"table9\.yaml: rows\[1\]: field 'paper' needs one value per column"):
        load_spec(bad)
    bad.write_text(text.replace("paper: [36.7]", "paper: [36.7, 85.4, 51.5]").replace("reference_row: reasonbridge",
                                                                                      "reference_row: nope"))
    with pytest.raises(SpecError, match=r"table9\.yaml: field 'reference_row' 'nope'"):
        load_spec(bad)
