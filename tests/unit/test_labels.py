"""Domain-separation labels: one module-level constant each, all in the spec.

Scans the shipped code (chalicelib/, client_sim/, sealbox_tools/) for ``b"sealbox/v1/..."``
literals and checks that each appears exactly once, as the value of a
module-level constant, and that docs/spec/README.md lists exactly these.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

from tests.conftest import ROOT

LABEL_PREFIX = b"sealbox/v1/"


def label_literals() -> list[tuple[str, bytes, bool]]:
    """(module, label, defined as a module-level constant) for every label literal."""
    found = []
    packages = ("chalicelib", "client_sim", "sealbox_tools")
    for path in sorted(path for package in packages for path in ROOT.glob(f"{package}/**/*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {
            id(node.value)
            for node in tree.body
            if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, bytes)
                and node.value.startswith(LABEL_PREFIX)
            ):
                module = str(path.relative_to(ROOT))
                found.append((module, node.value, id(node) in top_level))
    return found


def test_each_label_is_one_module_level_constant() -> None:
    literals = label_literals()
    assert literals, "no labels found: the scan is broken"
    counts = Counter(label for _, label, _ in literals)
    assert [label for label, n in counts.items() if n > 1] == []
    assert [(m, label) for m, label, top in literals if not top] == []


def test_labels_are_versioned_and_well_formed() -> None:
    for _, label, _ in label_literals():
        assert re.fullmatch(rb"sealbox/v1/[a-z][a-z0-9-]*", label), label


def test_spec_lists_exactly_the_labels_in_code() -> None:
    readme = (ROOT / "docs" / "spec" / "README.md").read_text(encoding="utf-8")
    table = set(re.findall(r"^\| `(sealbox/v1/[a-z0-9-]+)` \|", readme, flags=re.MULTILINE))
    code = {label.decode() for _, label, _ in label_literals()}
    assert table == code


def test_spec_files_exist_and_link_to_each_other() -> None:
    spec = ROOT / "docs" / "spec"
    readme = (spec / "README.md").read_text(encoding="utf-8")
    for name in ("cards.md", "sealed.md", "keystore.md", "backup.md"):
        assert (spec / name).is_file()
        assert f"]({name})" in readme
    assert "](age.md)" in readme
    vector_files = re.findall(r"^\| `([a-z_0-9]+\.json)` \|", readme, flags=re.MULTILINE)
    # Every vector file is listed, and every listed file exists.
    data = ROOT / "tests" / "vectors" / "data" / "sealbox"
    assert sorted(vector_files) == sorted(path.name for path in data.glob("*.json"))


def test_the_scan_sees_a_nested_literal() -> None:
    # The scan must notice a label used inline, or the first test proves nothing.
    tree = ast.parse('def f():\n    return b"sealbox/v1/x"\n')
    nested = [
        n for n in ast.walk(tree) if isinstance(n, ast.Constant) and n.value == b"sealbox/v1/x"
    ]
    top_level = {id(n.value) for n in tree.body if isinstance(n, ast.Assign)}
    assert nested
    assert id(nested[0]) not in top_level


def test_root_is_the_repository() -> None:
    assert (Path(ROOT) / "pyproject.toml").is_file()
