"""The API is held to buf's STANDARD lint rules, and it cannot change incompatibly by accident: `buf breaking`
compares the protos against the previous commit's (against HEAD while the working tree's protos differ from it).

buf comes from the npm registry (`make tools`, which `make test` runs); a missing buf fails here, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUF = ROOT / ".tools" / "node_modules" / ".bin" / "buf"
API = ["proto", "buf.yaml"]


def buf(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    assert BUF.exists(), f"{BUF} is missing: run `make tools`"
    return subprocess.run([str(BUF), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)


def test_buf_lint_passes_with_the_standard_rules() -> None:
    result = buf("lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "STANDARD" in (ROOT / "buf.yaml").read_text()


def baseline() -> str | None:
    """HEAD while the working tree's API differs from it, else the commit before; None before buf.yaml existed."""
    changed = git("diff", "--quiet", "HEAD", "--", *API).returncode != 0
    ref = "HEAD" if changed else "HEAD~1"
    assert git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}").returncode == 0, (
        f"{ref} is not in this clone: the breaking-change check needs the previous commit (clone without --depth 1)"
    )
    return ref if git("cat-file", "-e", f"{ref}:buf.yaml").returncode == 0 else None


def test_the_api_is_compatible_with_the_previous_commit() -> None:
    ref = baseline()
    if ref is None:
        pytest.skip("the previous commit predates buf.yaml: this is the deliberate API clean-up")
    result = buf("breaking", "--against", f".git#ref={ref}")
    assert result.returncode == 0, f"incompatible with {ref}:\n{result.stdout}{result.stderr}"


def test_buf_breaking_catches_a_removed_field_and_a_renumbered_one(tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(ROOT / "proto", changed / "proto")
    shutil.copy(ROOT / "buf.yaml", changed / "buf.yaml")
    query = changed / "proto" / "alloop" / "v1" / "query.proto"
    text = query.read_text()
    assert "  int32 max_candidates = 5;\n" in text and "  string labeler = 1;\n" in text
    query.write_text(
        text.replace("  int32 max_candidates = 5;\n", "").replace("  string labeler = 1;\n", "  string labeler = 9;\n")
    )
    result = buf("breaking", "--against", str(ROOT), cwd=changed)
    assert result.returncode != 0
    assert "max_candidates" in result.stdout and "labeler" in result.stdout, result.stdout
