"""Execute the notebooks in notebooks/ with nbclient and store them WITH their outputs, so that a code
host shows the results and figures without running anything.

    python tools/execute_notebooks.py            # all notebooks
    python tools/execute_notebooks.py 02_*.ipynb # some

Run after changing a notebook or the results it shows; tests/test_notebooks.py checks that the stored
outputs are complete (every code cell executed, no error, the key results and figures present).
"""
from __future__ import annotations

import sys
from pathlib import Path

import nbclient
import nbformat

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    nb.metadata.pop("widgets", None)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    tmp.replace(path)


def main(argv: list[str]) -> int:
    paths = ([NOTEBOOKS / a for a in argv] if argv else sorted(NOTEBOOKS.glob("*.ipynb")))
    for p in paths:
        execute(p)
        sys.stdout.write(f"executed and stored with outputs: {p.name}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
