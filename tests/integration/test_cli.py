"""Every entry point answers --version, and shared flags mean the same everywhere; a bad choice fails before any
connection is tried."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import tomllib

from alloop import __version__

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_every_entry_point_prints_its_version(script: str) -> None:
    done = subprocess.run([str(BIN / script), "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{script} {__version__}"


def test_an_unknown_strategy_is_refused_before_connecting() -> None:
    started = time.monotonic()
    # 192.0.2.1 (TEST-NET-1) never answers: a client that tried to connect would wait out its 30 s timeout.
    done = subprocess.run(
        [str(BIN / "alloop-pool"), "--query-address", "192.0.2.1:1", "query", "--strategy", "coin", "-k", "3"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "invalid choice: 'coin'" in done.stderr and "kmeans_diversity" in done.stderr
    assert time.monotonic() - started < 20


@pytest.mark.parametrize("module", ["clients.pool", "clients.oracle", "clients.labeler"])
def test_clients_share_the_address_and_pool_flags(module: str) -> None:
    from importlib import import_module

    main = import_module(module)
    parser = main.build_parser() if hasattr(main, "build_parser") else None
    help_text = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True, timeout=60)
    assert "--query-address HOST:PORT" in help_text.stdout and "ALLOOP_QUERY_ADDRESS" in help_text.stdout
    if parser is not None:  # the oracle: pool and count share the pool client's defaults
        args = parser.parse_args(["--pool-file", "x.jsonl"])
        assert args.pool == "default" and args.count == 500
