"""What onnxruntime's Python tools write to the engine child's log stream, kept out of the daemon's logs."""

from __future__ import annotations

import logging
import warnings


class _PreprocessAdvice(logging.Filter):
    """quantize_dynamic's advice to pre-process, logged on the root logger: dqd pre-processes itself
    (or records why it could not, dqd.pipeline.prepare), so the line only reached the daemon's stderr raw."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def quiet_onnxruntime_logging() -> None:
    """Keep onnxruntime's Python tools from writing to the caller's log stream.

    Importing ``matmul_nbits_quantizer`` (the fork server preloads it) runs
    ``logging.basicConfig(level=INFO)``, so the quantizer's per-tensor INFO lines
    reached the daemon's stderr unformatted, and ``quant_pre_process`` logs a
    traceback at ERROR when its optimization fails and goes on without it
    (dqd.pipeline.prepare catches that line and records it).
    """
    root = logging.getLogger()
    root.setLevel(logging.WARNING)
    if not any(isinstance(f, _PreprocessAdvice) for f in root.filters):
        root.addFilter(_PreprocessAdvice())
    logging.getLogger("onnxruntime.quantization").setLevel(logging.CRITICAL)
    # NaN or infinite weights make its scale arithmetic warn; the accuracy gate judges the result.
    warnings.filterwarnings("ignore", category=RuntimeWarning, module="onnxruntime")
