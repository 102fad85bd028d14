"""Run notebooks as parameterised pipelines with papermill, failing at the right cell.

    from workbench.pipelines import run_pipeline, PipelineError
    result = run_pipeline("notebooks/03-pipeline.ipynb", {"tag": "app:1", "test_command": "true"})
    result.output          # the executed notebook
    result.provenance      # every image the run built or pulled (from the cells' output metadata)

Parameters are checked against the notebook's `parameters` cell first, so a misspelt name fails at
once instead of being silently ignored (papermill #818/#667). The kernel runs in the notebook's folder,
so `workbench.lock` lands beside the notebook. A failing cell raises `PipelineError(cell, message)`:
`cell` is its index in the source notebook, `message` the error's one line (`BuildError: ...`).

`python -m workbench.pipelines NOTEBOOK [-p NAME VALUE]... [-o OUTPUT]` does the same from a shell and
exits 1 on failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import WorkbenchError

__all__ = ["PipelineError", "PipelineResult", "check_parameters", "main", "run_pipeline"]


class PipelineError(WorkbenchError):
    """A pipeline notebook failed. `cell` is the failing cell's index in the source notebook (None when
    the run failed before any cell), `message` the error in one line."""

    def __init__(self, cell: int | None, message: str, *, tags: Sequence[str] = (), source: str = "",
                 ename: str = "", evalue: str = "", output: Path | None = None) -> None:
        where = f"cell {cell}" + (f" [{', '.join(tags)}]" if tags else "") if cell is not None else "pipeline"
        super().__init__(f"{where}: {message}")
        self.cell, self.tags, self.source = cell, tuple(tags), source
        self.ename, self.evalue, self.output = ename, evalue, output
        self.reason = message


@dataclass(frozen=True)
class PipelineResult:
    notebook: Path
    output: Path
    parameters: dict[str, Any]
    seconds: float
    provenance: list[dict[str, Any]] = field(default_factory=list)


def _parameters_cell(nb: Any) -> int | None:
    for i, cell in enumerate(nb.cells):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return i
    return None


def check_parameters(notebook: str | Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The notebook's declared parameters; raises PipelineError for any name it does not declare."""
    import nbformat
    import papermill

    nb = nbformat.read(str(notebook), as_version=4)
    index = _parameters_cell(nb)
    if index is None:
        if params:
            raise PipelineError(None, f"{Path(notebook).name} has no cell tagged 'parameters'")
        return {}
    declared = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(params) - set(declared))
    if unknown:
        raise PipelineError(index, f"unknown parameter{'s' if len(unknown) > 1 else ''} "
                                   f"{', '.join(unknown)}; {Path(notebook).name} takes: {', '.join(declared)}",
                            tags=("parameters",))
    return declared


def _failure(source_nb: Any, output_path: Path) -> PipelineError:
    """The first errored cell of the executed notebook, mapped back to the source notebook."""
    import nbformat

    nb = nbformat.read(str(output_path), as_version=4)
    ids = {cell.get("id"): i for i, cell in enumerate(source_nb.cells)}
    for cell in nb.cells:
        errors = [o for o in cell.get("outputs", []) if o.get("output_type") == "error"]
        if not errors and not cell.get("metadata", {}).get("papermill", {}).get("exception"):
            continue
        ename = errors[0].get("ename", "") if errors else ""
        evalue = errors[0].get("evalue", "") if errors else ""
        index = ids.get(cell.get("id"))
        tags = cell.get("metadata", {}).get("tags") or []
        return PipelineError(index, f"{ename}: {evalue}" if ename else evalue or "the cell failed",
                             tags=tags, source=cell.get("source", ""), ename=ename, evalue=evalue,
                             output=output_path)
    return PipelineError(None, "the run failed, but no cell holds an error", output=output_path)


def _provenance(output_path: Path) -> list[dict[str, Any]]:
    import nbformat

    nb = nbformat.read(str(output_path), as_version=4)
    found: list[dict[str, Any]] = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            record = (out.get("metadata") or {}).get("workbench", {}).get("provenance")
            if isinstance(record, list):
                found.extend(record)
            elif isinstance(record, dict):
                found.append(record)
    return found


def run_pipeline(notebook: str | Path, params: Mapping[str, Any] | None = None, *,
                 output: str | Path | None = None, cwd: str | Path | None = None, kernel_name: str | None = None,
                 timeout: float | None = None, log_output: bool = False) -> PipelineResult:
    """Execute `notebook` top to bottom with `params` injected after its `parameters` cell.

    Raises:
        PipelineError: an unknown parameter, or a cell that failed (index, tags and one-line message).
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    source = Path(notebook).resolve()
    params = dict(params or {})
    check_parameters(source, params)
    if output is None:
        runs = Path(tempfile.gettempdir()) / "workbench-runs"
        runs.mkdir(parents=True, exist_ok=True)
        output = runs / f"{source.stem}-{time.strftime('%Y%m%d-%H%M%S')}-{time.monotonic_ns() % 10**6}.ipynb"
    output = Path(output).resolve()
    started = time.monotonic()
    try:
        papermill.execute_notebook(str(source), str(output), parameters=params, cwd=str(cwd or source.parent),
                                   kernel_name=kernel_name, progress_bar=False, log_output=log_output,
                                   execution_timeout=timeout)
    except PapermillExecutionError:
        raise _failure(nbformat.read(str(source), as_version=4), output) from None
    return PipelineResult(source, output, params, time.monotonic() - started, _provenance(output))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench.pipelines", description=__doc__.split("\n")[0])
    p.add_argument("notebook")
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
    p.add_argument("-o", "--output", help="where to write the executed notebook")
    p.add_argument("--log-output", action="store_true", help="echo cell output while running")
    a = p.parse_args(argv)
    import yaml

    params = {k: yaml.safe_load(v) for k, v in a.parameter}
    try:
        result = run_pipeline(a.notebook, params, output=a.output, log_output=a.log_output)
    except PipelineError as err:
        print(f"pipeline failed: {err}", file=sys.stderr)
        if err.output:
            print(f"executed notebook: {err.output}", file=sys.stderr)
        return 1
    print(f"pipeline ok in {result.seconds:.1f}s: {result.output}")
    for record in result.provenance:
        print(f"  {record.get('kind', '')} {record.get('reference', '')} {record.get('image_id', '')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
