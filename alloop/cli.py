"""What every entry point's command line shares."""

from __future__ import annotations

import argparse

from alloop import __version__


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """``--version`` prints the installed alloop's version and exits."""
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
