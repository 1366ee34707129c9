"""The what-if notebooks run top to bottom (executed with nbclient, as a user would in Jupyter).

They are committed without outputs; here each is executed in a fresh kernel from the notebooks/
folder with a per-notebook timeout, so an API change that breaks a notebook fails CI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need nbformat, nbclient and ipykernel")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need nbformat, nbclient and ipykernel")
pytest.importorskip("ipykernel", reason="notebook tests need nbformat, nbclient and ipykernel")

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("*.ipynb"))
TIMEOUT_S = 150  # per cell; each notebook runs in well under a minute on a 2-core machine


def test_notebooks_exist() -> None:
    names = {p.stem for p in NOTEBOOKS}
    for n in ("01-quickstart", "02-expiry-retry-tradeoffs", "03-replication-modes", "04-validation", "05-capacity-plan"):
        assert n in names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_committed_without_outputs(path: Path) -> None:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, f"{path.name}: strip outputs"
            src = "".join(cell["source"])
            for line in src.splitlines():  # simsip only: no model code in cells
                if line.startswith(("import ", "from ")):
                    mod = line.split()[1].split(".")[0]
                    assert mod in {"simsip", "pandas", "pathlib", "importlib"}, f"{path.name}: imports {mod}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=TIMEOUT_S, kernel_name="python3",
                                     resources={"metadata": {"path": str(NB_DIR)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    if path.stem == "04-validation":  # the shipped runs are found (xz-packed) and one is forecast
        text = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        assert "Nothing to validate" not in text and "inside the 90 % interval" in text, text
