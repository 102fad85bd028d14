"""Every notebook in notebooks/ executed headless by papermill with parameters (through
`workbench.pipelines.run_pipeline`), plus a pipeline that must fail at its test cell."""

from __future__ import annotations

import json
import re

import nbformat
import pytest

from tests.notebook.conftest import NOTEBOOKS, free_port
from workbench.pipelines import PipelineError, check_parameters, run_pipeline

_CURSOR = re.compile(r"\x1b\[\d*[ABCDKJ]")   # cursor motion / line erase: never in notebook output


def _outputs(path) -> list[dict]:
    nb = nbformat.read(str(path), as_version=4)
    return [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]


def _text(path) -> str:
    parts = []
    for o in _outputs(path):
        if o.get("output_type") == "stream":
            parts.append(o["text"])
        elif "data" in o:
            parts.append(o["data"].get("text/plain", ""))
    return "".join(parts)


def _cell_index(name: str, tag: str) -> int:
    nb = nbformat.read(str(NOTEBOOKS / name), as_version=4)
    return next(i for i, c in enumerate(nb.cells) if tag in c.metadata.get("tags", []))


@pytest.fixture
def pipeline_dir(tmp_path, kernel_env, monkeypatch):
    monkeypatch.delenv("WORKBENCH_LOCK", raising=False)
    return tmp_path


def _check_plain(path) -> None:
    text = _text(path)
    assert not _CURSOR.search(text), "cursor motion in headless output"
    assert "application/vnd.jupyter.widget-view+json" not in json.dumps(_outputs(path)), "widgets headless"


def test_every_notebook_has_a_parameters_cell():
    names = sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    assert names == ["01-getting-started.ipynb", "02-registry.ipynb", "03-pipeline.ipynb", "04-layers.ipynb"]
    for name in names:
        assert check_parameters(NOTEBOOKS / name, {}), name


def test_unknown_parameters_fail_before_running():
    with pytest.raises(PipelineError) as info:
        run_pipeline(NOTEBOOKS / "03-pipeline.ipynb", {"tga": "x"})
    assert info.value.cell == _cell_index("03-pipeline.ipynb", "parameters")
    assert "unknown parameter tga" in str(info.value) and "test_command" in str(info.value)


def test_01_getting_started(engine, busybox, builder, pipeline_dir):
    result = run_pipeline(NOTEBOOKS / "01-getting-started.ipynb",
                          {"tag": "nbtest-hello:1", "container_name": "nbtest-gs", "cleanup": True,
                           "greeting": "hi from papermill"}, output=pipeline_dir / "01.ipynb", cwd=pipeline_dir)
    text = _text(result.output)
    assert "hi from papermill" in text and "args: one two words three" in text
    assert "[1/5] FROM busybox:latest  … base" in text and "built nbtest-hello:1" in text
    assert "Containers" in text and "nbtest-gs" in text          # the dashboard, as text headless
    assert [r["reference"] for r in result.provenance] == ["nbtest-hello:1"]
    lock = json.loads((pipeline_dir / "workbench.lock").read_text())
    assert lock["images"]["nbtest-hello:1"]["base_images"].keys() == {"busybox:latest"}
    _check_plain(result.output)


def test_02_registry(engine, busybox, registry, pipeline_dir):
    addr = f"127.0.0.1:{free_port()}"
    result = run_pipeline(NOTEBOOKS / "02-registry.ipynb", {"registry_addr": addr, "repository": "nbtest/bb"},
                          output=pipeline_dir / "02.ipynb", cwd=pipeline_dir)
    text = _text(result.output)
    assert f"pushed {addr}/nbtest/bb:v1" in text and f"pulled {addr}/nbtest/bb:v1" in text
    assert "nbtest/bb" in text and "repositories" in text
    kinds = {r["reference"]: r.get("kind") for r in result.provenance}
    assert kinds[f"{addr}/nbtest/bb:v1"] == "pull"
    _check_plain(result.output)


def test_03_pipeline_passes_and_pushes(engine, busybox, builder, registry, pipeline_dir):
    result = run_pipeline(NOTEBOOKS / "03-pipeline.ipynb",
                          {"tag": "nbtest-pipe:1", "test_command": "test -f /built.txt && echo tested",
                           "registry": registry}, output=pipeline_dir / "03.ipynb", cwd=pipeline_dir)
    text = _text(result.output)
    assert "tested" in text and f"pushed {registry}/nbtest-pipe:1" in text
    assert "images match" in text
    assert engine.client().registry.tags(registry, "nbtest-pipe") == ["1"]
    _check_plain(result.output)


def test_03_pipeline_fails_at_the_test_cell(engine, busybox, builder, registry, pipeline_dir):
    with pytest.raises(PipelineError) as info:
        run_pipeline(NOTEBOOKS / "03-pipeline.ipynb",
                     {"tag": "nbtest-pipe-bad:1", "test_command": "echo broken >&2; exit 3", "registry": registry},
                     output=pipeline_dir / "03-bad.ipynb", cwd=pipeline_dir)
    err = info.value
    assert err.cell == _cell_index("03-pipeline.ipynb", "test") and "test" in err.tags
    assert err.ename == "ContainerError" and "exited with code 3" in err.evalue and "broken" in err.evalue
    executed = nbformat.read(str(err.output), as_version=4)
    push = next(c for c in executed.cells if "push" in c.metadata.get("tags", []))
    assert not push.get("outputs") and push.get("execution_count") is None   # never pushed
    assert "nbtest-pipe-bad" not in engine.client().registry.catalog(registry)


def test_03_pipeline_fails_at_the_build_cell(engine, busybox, builder, pipeline_dir):
    with pytest.raises(PipelineError) as info:
        run_pipeline(NOTEBOOKS / "03-pipeline.ipynb",
                     {"tag": "nbtest-pipe-nobuild:1", "dockerfile": "FROM busybox:latest\nRUN exit 9\n"},
                     output=pipeline_dir / "03-nobuild.ipynb", cwd=pipeline_dir)
    assert info.value.cell == _cell_index("03-pipeline.ipynb", "build")
    assert info.value.ename == "BuildError" and "line 2" in info.value.evalue


def test_04_layers(engine, busybox, builder, pipeline_dir):
    result = run_pipeline(NOTEBOOKS / "04-layers.ipynb", {"tag": "nbtest-layers:1", "junk_kb": 256},
                          output=pipeline_dir / "04.ipynb", cwd=pipeline_dir)
    text = _text(result.output)
    assert "/junk.bin" in text and "/etc/app.conf" in text
    assert "efficiency" in text
    _check_plain(result.output)
