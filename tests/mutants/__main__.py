"""Plant each known bug of :mod:`tests.mutants.catalog` in a temporary copy of the tree and run its test there.

    python -m tests.mutants                 # every mutant; exit 1 if any survives (what `make mutants` runs)
    python -m tests.mutants --only NAME ... # some of them
    python -m tests.mutants --list

The copy holds what git tracks plus untracked files git does not ignore, and the generated stubs; the tests run
with this interpreter, the copy first on ``PYTHONPATH`` (checked before the first mutant), so the services the
tests start as subprocesses run the planted code too. A mutant counts as caught only when pytest reports failed
tests (exit status 1), not when the copy cannot even be collected.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("alloop/v1",)
TIMEOUT_S = 1200


def plant(tree: Path, mutant: Mutant) -> None:
    path = tree / mutant.path
    text = path.read_text()
    found = text.count(mutant.old)
    if found != 1:
        raise SystemExit(f"mutant {mutant.name}: its snippet occurs {found} times in {mutant.path}, not once")
    path.write_text(text.replace(mutant.old, mutant.new))


def copy_tree(destination: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    files = [Path(name.decode()) for name in listed if name]
    for generated in GENERATED:
        files += [p.relative_to(ROOT) for p in (ROOT / generated).rglob("*") if p.is_file()]
    for name in files:
        source = ROOT / name
        if not source.is_file():  # deleted in the work tree but still in the index
            continue
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination / name)


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def check_imports(tree: Path) -> None:
    """The copy's packages, not the editable install's, must be the ones imported there."""
    probe = "import alloop, query_service, trainer_service, tests; print(*(m.__file__ for m in (alloop, query_service, trainer_service, tests)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=tree, env=environment(tree), check=True, capture_output=True, text=True
    ).stdout.split()
    outside = [path for path in out if not Path(path).resolve().is_relative_to(tree.resolve())]
    if outside:
        raise SystemExit(f"the copy imports code from outside it: {outside}")


def run(mutant: Mutant, pristine: Path, scratch: Path) -> tuple[str, float]:
    tree = scratch / mutant.name
    shutil.copytree(pristine, tree, symlinks=True)
    plant(tree, mutant)
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", mutant.test]
    started = time.monotonic()
    try:
        done = subprocess.run(
            command, cwd=tree, env=environment(tree), capture_output=True, text=True, timeout=TIMEOUT_S
        )
    except subprocess.TimeoutExpired:
        return "caught (the test hung past its limit)", time.monotonic() - started
    finally:
        shutil.rmtree(tree, ignore_errors=True)
    elapsed = time.monotonic() - started
    (scratch / f"{mutant.name}.log").write_text(done.stdout + done.stderr)
    if done.returncode == 1:
        return "caught", elapsed
    if done.returncode == 0:
        return "SURVIVED", elapsed
    tail = (done.stdout + done.stderr)[-2000:]
    raise SystemExit(f"mutant {mutant.name}: pytest exited {done.returncode} (not a test failure):\n{tail}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--list", action="store_true", help="list the mutants and their tests")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs of each run)")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.only and (unknown := set(args.only) - {m.name for m in MUTANTS}):
        parser.error(f"unknown mutants: {', '.join(sorted(unknown))}")
    if args.list:
        for mutant in chosen:
            print(f"{mutant.name:40} {mutant.test}")
        return 0
    scratch = Path(tempfile.mkdtemp(prefix="alloop-mutants-"))
    survivors = []
    try:
        pristine = scratch / "pristine"
        copy_tree(pristine)
        check_imports(pristine)
        for mutant in chosen:
            verdict, seconds = run(mutant, pristine, scratch)
            print(f"{mutant.name:40} {verdict:10} {seconds:6.0f} s  {mutant.test}", flush=True)
            if verdict == "SURVIVED":
                survivors.append(mutant.name)
    finally:
        if args.keep:
            print(f"logs in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    if survivors:
        print(f"{len(survivors)} planted bug(s) survived their test: {', '.join(survivors)}")
        return 1
    print(f"all {len(chosen)} planted bugs were caught")
    return 0


if __name__ == "__main__":
    sys.exit(main())
