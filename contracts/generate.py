"""Write the contracts' JSON Schemas, generated from the models: ``python -m contracts.generate``.

Run it after changing a model; ``tests/unit/test_contracts.py`` fails until the files match.
"""

from __future__ import annotations

from pathlib import Path

from contracts.registry import generate_schemas, render
from contracts.versions import schema_file

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"


def write_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema that differs from its file; return the names of the files written."""
    written = []
    for name, schema in generate_schemas().items():
        path = directory / schema_file(name)
        text = render(schema)
        if not path.exists() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")
            written.append(path.name)
    return written


if __name__ == "__main__":
    changed = write_schemas()
    print(f"written: {', '.join(changed)}" if changed else "schemas already up to date")
