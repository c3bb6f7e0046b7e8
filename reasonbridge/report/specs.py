"""Table definitions (experiments/*.yaml): rows, their config, and the paper's numbers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

KINDS = ("accuracy", "implementation", "scaling")
IMPLEMENTATION_COLUMNS = ("adapter_dim", "params_modified_pct", "learning_rate", "training_hours")


class SpecError(ValueError):
    """A table definition that cannot be read; the message names the file and the field."""


@dataclass
class RowSpec:
    row: str  # the run tag `row` (a conf/row preset, or <strategy>_<k> for the scaling runs)
    label: str  # "{model}" is replaced by the student's label
    paper: list[Any] | dict[str, Any] | None = None  # single-student tables: values in column order
    also: list[str] = field(default_factory=list)  # other row tags whose runs fill this row
    interventions: int | None = None  # scaling rows


@dataclass
class TableSpec:
    name: str
    path: Path
    title: str
    sweep: str
    sources: list[str]  # run tags `table` whose runs fill this table
    kind: str
    per_model: bool
    columns: dict[str, str]  # benchmark option (or implementation field) -> header
    rows: list[RowSpec]
    paper_model: str | None = None
    paper_model_label: str | None = None
    reference_row: str | None = None
    # per-student tables: model option -> {"label": ..., row -> values}
    paper: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference_only: list[dict[str, Any]] = field(default_factory=list)
    # benchmarks the paper's table lacks that our runs measure (the organism's): option -> header
    measured_columns: dict[str, str] = field(default_factory=dict)
    # columns that ask what the training data showed (the claims table leaves them out of "new tasks")
    in_distribution: list[str] = field(default_factory=list)

    def model_label(self, model: str) -> str:
        if model == self.paper_model and self.paper_model_label:
            return self.paper_model_label
        return self.paper.get(model, {}).get("label", model)

    def paper_values(self, model: str, row: RowSpec) -> list[Any] | None:
        """The paper's values for this student's row in column order, or None."""
        if self.per_model:
            found = self.paper.get(model, {}).get(row.row)
            if isinstance(found, dict):
                return [found.get(c) for c in self.columns]
            return found
        return row.paper


def _need(data: dict, key: str, kind: type | tuple, where: str) -> Any:
    if key not in data:
        raise SpecError(f"{where}: missing field {key!r}")
    if not isinstance(data[key], kind):
        raise SpecError(f"{where}: field {key!r} must be {getattr(kind, '__name__', kind)}, got {data[key]!r}")
    return data[key]


def load_spec(path: Path) -> TableSpec:
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping at the top level")
    where = str(path)
    columns = _need(data, "columns", dict, where)
    kind = _need(data, "kind", str, where)
    if kind not in KINDS:
        raise SpecError(f"{where}: field 'kind' must be one of {list(KINDS)}, got {kind!r}")
    if kind == "implementation" and set(columns) != set(IMPLEMENTATION_COLUMNS):
        raise SpecError(f"{where}: an implementation table has columns {list(IMPLEMENTATION_COLUMNS)}")
    rows = []
    for i, raw in enumerate(_need(data, "rows", list, where)):
        rwhere = f"{where}: rows[{i}]"
        if not isinstance(raw, dict):
            raise SpecError(f"{rwhere}: expected a mapping with 'row' and 'label'")
        row = RowSpec(row=str(_need(raw, "row", str, rwhere)), label=str(_need(raw, "label", str, rwhere)),
                      paper=raw.get("paper"), also=list(raw.get("also", [])), interventions=raw.get("interventions"))
        if row.paper is not None and (not isinstance(row.paper, list) or len(row.paper) != len(columns)):
            raise SpecError(f"{rwhere}: field 'paper' needs one value per column ({len(columns)})")
        if kind == "scaling" and not isinstance(row.interventions, int):
            raise SpecError(f"{rwhere}: a scaling row needs an integer 'interventions'")
        rows.append(row)
    spec = TableSpec(name=path.stem, path=path, title=str(_need(data, "title", str, where)),
                     sweep=str(data.get("sweep", f"python run.py -m experiment={path.stem}")),
                     sources=[str(s) for s in _need(data, "sources", list, where)], kind=kind,
                     per_model=bool(_need(data, "per_model", bool, where)), columns=dict(columns), rows=rows,
                     paper_model=data.get("paper_model"),
                     paper_model_label=data.get("paper_model_label"), reference_row=data.get("reference_row"),
                     paper=dict(data.get("paper") or {}), reference_only=list(data.get("reference_only") or []),
                     measured_columns={str(k): str(v) for k, v in (data.get("measured_columns") or {}).items()},
                     in_distribution=[str(c) for c in data.get("in_distribution") or []])
    row_names = [r.row for r in rows]
    if len(set(row_names)) != len(row_names):
        raise SpecError(f"{where}: field 'rows' names a row twice")
    if spec.reference_row is not None and spec.reference_row not in row_names:
        raise SpecError(f"{where}: field 'reference_row' {spec.reference_row!r} is not one of the rows {row_names}")
    if not spec.per_model and not spec.paper_model:
        raise SpecError(f"{where}: a table with per_model: false needs 'paper_model' (the student the paper ran)")
    for model, entry in spec.paper.items():
        for key, values in entry.items():
            if key == "label":
                continue
            if key not in row_names:
                raise SpecError(f"{where}: paper.{model}.{key} is not one of the rows {row_names}")
            if isinstance(values, dict):
                unknown = set(values) - set(columns)
                if unknown:
                    raise SpecError(f"{where}: paper.{model}.{key} has unknown columns {sorted(unknown)}")
            elif not isinstance(values, list) or len(values) != len(columns):
                raise SpecError(f"{where}: paper.{model}.{key} needs one value per column ({len(columns)})")
    for g, group in enumerate(spec.reference_only):
        for r, ref in enumerate(group.get("rows", [])):
            if len(ref.get("values", [])) != len(columns):
                raise SpecError(f"{where}: reference_only[{g}].rows[{r}].values needs one value per column")
    return spec


ORDER = ("table1", "table2", "table3", "table4", "scaling")


def load_specs(folder: Path, names: list[str] | None = None) -> list[TableSpec]:
    """Every table definition in ``folder`` (paper order first), or only ``names``."""
    paths = {p.stem: p for p in sorted(Path(folder).glob("*.yaml"))}
    if not paths:
        raise SpecError(f"{folder}: no table definitions (*.yaml)")
    if names:
        missing = [n for n in names if n not in paths]
        if missing:
            raise SpecError(f"{folder}: no table definition named {missing} (have {sorted(paths)})")
        chosen = names
    else:
        chosen = [n for n in ORDER if n in paths] + sorted(n for n in paths if n not in ORDER)
    return [load_spec(paths[n]) for n in chosen]
