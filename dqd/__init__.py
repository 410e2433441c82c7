"""dqd: a dynamic-quantization daemon for ONNX model repositories."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dqd")
except PackageNotFoundError:  # running from a checkout without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
