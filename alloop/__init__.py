"""alloop: active learning for text classification as two gRPC/Redis services."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alloop")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
