"""Build one variant file from a prepared model and a :class:`VariantSpec`.

Files land atomically at ``<output_dir>/<model path relative to its root, no .onnx>/<sha256[:12]>/
<spec.name>-<spec.key(ort)>.onnx``; an existing file with the same key is reused.  The source
model is only ever read.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import onnx

from dqd.domain import BLOCKWISE_BITS, VariantResult, VariantSpec, WeightType
from dqd.errors import EnvironmentFailure
from dqd.fileperms import make_shared
from dqd.modelfile import content_sha256, model_files, unit_stat
from dqd.pathtext import for_display, for_tools
from dqd.pipeline.external import save_streaming
from dqd.pipeline.ondisk import weights_on_disk
from dqd.scratch import writer_tag
from dqd.scratchnames import BUILD_PREFIX
from dqd.text import first_line

logger = logging.getLogger(__name__)

_MISSING_TYPE = "Unable to find data type for weight_name"
PROVENANCE_PREFIX = "dqd."
# MatMulNBits' "compute in int8": activations quantized to int8 per block at run time (what makes a
# Q4/Q8 variant dynamic quantization); lower levels compute in float on the CPU.
BLOCKWISE_ACCURACY_LEVEL = 4


DISK_FULL = (errno.ENOSPC, errno.EDQUOT)  # the output volume's fault, whichever step hit it


class OutputDirError(EnvironmentFailure):
    """The output directory cannot take the variant files (the environment's fault, not the model's)."""

    def __init__(self, path: Path, exc: OSError) -> None:
        self.path = path
        if exc.errno == errno.ENOSPC:
            hint = "no space left on the device: free space or point output_dir (DQD_OUTPUT_DIR) elsewhere"
        elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            hint = "not writable: fix its permissions or set output_dir (DQD_OUTPUT_DIR) to a writable folder"
        else:
            hint = f"{exc.strerror or exc}: check the folder or set output_dir (DQD_OUTPUT_DIR)"
        super().__init__(f"output directory {path}: {hint}", setting="output_dir")


def variant_dir(output_dir: Path, relative_model_path: Path, sha256: str) -> Path:
    # onnxruntime opens variants by UTF-8 path: a name that is not UTF-8 in its displayed form.
    folder = relative_model_path.with_suffix("")
    return output_dir.joinpath(*(for_tools(part) for part in folder.parts)) / sha256[:12]


def variant_path(directory: Path, spec: VariantSpec, ort_version: str) -> Path:
    return directory / f"{spec.name}-{spec.key(ort_version)}.onnx"


def build_variant(
    prepared: Path,
    spec: VariantSpec,
    directory: Path,
    *,
    ort_version: str,
    provenance: Mapping[str, str],
    large: bool = False,
) -> VariantResult:
    """Quantize ``prepared`` per ``spec`` (``weight_type=None``: the prepared FP32 itself) into ``directory``.

    Quantizer failures come back as a result with ``error`` set; an unusable
    output directory raises :class:`OutputDirError`.
    """
    target = variant_path(directory, spec, ort_version)
    if target.exists():
        return _result(spec, ort_version, target, 0.0, reused=True)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=BUILD_PREFIX + writer_tag(), dir=directory))
    except OSError as exc:
        raise OutputDirError(directory, exc) from exc
    started = time.perf_counter()
    notes: list[str] = []
    try:
        raw = scratch / "quantized.onnx"
        try:
            notes.extend(_quantize(prepared, raw, spec, large=large))
        except Exception as exc:  # the quantizer raises bare Exceptions, AssertionErrors, KeyErrors...
            if isinstance(exc, OSError) and exc.errno in DISK_FULL:
                raise OutputDirError(directory, exc) from exc
            logger.debug("quantizing %s as %s failed", prepared, spec.name, exc_info=True)
            return VariantResult(
                spec,
                ort_version,
                None,
                None,
                None,
                time.perf_counter() - started,
                error=first_line(exc, with_type=True),
            )
        model = onnx.load(str(raw), load_external_data=not large)
        stamp_provenance(model, spec, provenance)
        staged = scratch / target.name
        if large:  # its tensors are in the quantizer's data file or, left FP32, in the prepared model's
            save_streaming(model, staged, [scratch, prepared.parent], name_by_content=True)
        else:
            onnx.save_model(model, str(staged))
        _publish(staged, target)
    except OSError as exc:
        raise OutputDirError(directory, exc) from exc
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _result(spec, ort_version, target, time.perf_counter() - started, notes=tuple(notes))


def _quantize(prepared: Path, out: Path, spec: VariantSpec, *, large: bool) -> list[str]:
    if spec.weight_type is None:  # re-saved with provenance by the caller, which reads a large one's data
        onnx.save_model(onnx.load(str(prepared), load_external_data=not large), str(out))
        return []
    if spec.weight_type.blockwise:
        _quantize_blockwise(prepared, out, spec, large=large)
        return []
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight = QuantType.QUInt8 if spec.weight_type is WeightType.U8U8 else QuantType.QInt8

    # A large model's weights are read from its folder, made the cwd (dqd.pipeline.ondisk).
    prepared, out = prepared.resolve(), out.resolve()

    def run(extra: dict[str, Any]) -> None:
        with weights_on_disk(prepared.parent) if large else contextlib.nullcontext():
            quantize_dynamic(
                str(prepared),
                str(out),
                op_types_to_quantize=list(spec.op_types) or None,
                per_channel=spec.per_channel,
                reduce_range=spec.reduce_range,
                weight_type=weight,
                nodes_to_exclude=list(spec.nodes_to_exclude) or None,
                use_external_data_format=large,
                extra_options=extra,  # a copy: quantize_dynamic adds keys to the dict it is given
            )

    try:
        run(dict(spec.extra_options))
        return []
    except Exception as exc:
        if _MISSING_TYPE not in str(exc) or "DefaultTensorType" in spec.extra_options:
            raise
    # Shape inference left some weight untyped; onnxruntime's documented workaround.
    run({**spec.extra_options, "DefaultTensorType": onnx.TensorProto.FLOAT})
    return [
        "retried with extra_options DefaultTensorType=FLOAT after 'Unable to find data type for weight_name'"
    ]


def _quantize_blockwise(prepared: Path, out: Path, spec: VariantSpec, *, large: bool) -> None:
    """MatMul weights to 4 or 8 bits per block (MatMulNBits, symmetric); every other op stays FP32."""
    assert spec.weight_type is not None and spec.block_size is not None  # VariantSpec's invariant
    # Imported here: it needs onnx_ir (its INFO lines are silenced, dqd.pipeline.analyse).
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        str(prepared),
        bits=BLOCKWISE_BITS[spec.weight_type],
        block_size=spec.block_size,
        is_symmetric=True,
        accuracy_level=BLOCKWISE_ACCURACY_LEVEL,
        nodes_to_exclude=list(spec.nodes_to_exclude),
        op_types_to_quantize=spec.op_types or None,
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(out), use_external_data_format=large)


def stamp_provenance(model: onnx.ModelProto, spec: VariantSpec, provenance: Mapping[str, str]) -> None:
    props = {p.key: p.value for p in model.metadata_props}
    props.update({PROVENANCE_PREFIX + k: v for k, v in provenance.items()})
    props[PROVENANCE_PREFIX + "spec"] = json.dumps(spec.to_dict(), sort_keys=True)
    onnx.helper.set_model_props(model, props)


def provenance_for(
    source_sha256: str, ort_version: str, dqd_version: str, source_path: str
) -> dict[str, str]:
    return {
        "source_sha256": source_sha256,
        "source_path": for_display(source_path),  # model metadata is protobuf text: UTF-8 only
        "onnxruntime_version": ort_version,
        "dqd_version": dqd_version,
    }


def _publish(staged: Path, target: Path) -> None:
    # Data file first: the model file appearing is what makes the variant exist.
    # Servers running as other users load these files: the shared mode, set before they appear.
    for data in model_files(staged)[1:]:
        make_shared(data)
        os.replace(data, target.parent / data.relative_to(staged.parent))
    make_shared(staged)
    os.replace(staged, target)


def _result(
    spec: VariantSpec,
    ort_version: str,
    path: Path,
    seconds: float,
    *,
    reused: bool = False,
    notes: tuple[str, ...] = (),
) -> VariantResult:
    size, _ = unit_stat(path)
    return VariantResult(
        spec=spec,
        ort_version=ort_version,
        output_path=str(path),
        output_sha256=content_sha256(path),  # with its .data file: the same identity as any model
        size_bytes=size,
        quantize_seconds=seconds,
        notes=(*notes, "reused an existing file with the same key") if reused else notes,
    )
