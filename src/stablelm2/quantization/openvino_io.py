"""OpenVINO formats: trace the transformers model to an IR with an explicit KV cache, compress with NNCF.

``openvino.convert_model`` traces the model once. The traced module here takes ``input_ids``,
``attention_mask``, ``position_ids`` and the past keys/values of every layer, and returns the
logits and the new keys/values, so one IR serves both prompt processing (empty past) and
token-by-token generation. The 4-D causal mask is built inside the graph from the 2-D
``attention_mask`` and ``position_ids`` (STACK.md: tracing without an explicit mask fails on
``aten::diff``). NNCF's ``compress_weights`` makes ``OV_INT8`` (per-channel) and ``OV_INT4``
(groups of 128; embeddings and output layer stay INT8, NNCF's default). Inference runs on the CPU
plugin with ``INFERENCE_PRECISION_HINT=f32`` so the formats differ only in their weights.

>>> from stablelm2.quantization import openvino_io
>>> ir = openvino_io.export("ckpt", "m.OV_INT4.ov", "OV_INT4")      # doctest: +SKIP
>>> eng = openvino_io.OpenVINOEngine(ir, threads=2)                 # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..files import atomic_dir, atomic_write_json
from .checkpoint import check
from .formats import INT4_GROUP, QuantError, get

META = "stablelm2_ov.json"


class OpenVINOError(ValueError):
    """An OpenVINO IR folder is missing or incomplete; the message names the file."""


def _kv_module(model: Any):
    import torch
    from transformers import DynamicCache

    n_layers = model.config.num_hidden_layers
    dtype = next(model.parameters()).dtype

    class WithKV(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, position_ids, *past):
            cache = DynamicCache(config=self.model.config)
            for i in range(n_layers):  # set the layers directly: DynamicLayer.update would trace a rank-1 cat
                layer = cache.layers[i]
                layer.keys, layer.values = past[2 * i].to(dtype), past[2 * i + 1].to(dtype)  # type: ignore[union-attr]
                layer.is_initialized, layer.device = True, past[2 * i].device  # type: ignore[union-attr]
            key_pos = torch.cumsum(attention_mask, -1) - 1
            mask = (key_pos[:, None, None, :] <= position_ids[:, None, :, None]) & (attention_mask[:, None, None, :] > 0)
            out = self.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                             cache_position=position_ids[0], cache=cache, use_cache=True)
            flat = []
            for layer in out.cache.layers:
                flat += [layer.keys.float(), layer.values.float()]
            return (out.logits.float(), *flat)

    return WithKV().eval()


def trace(model: Any):
    """``openvino.convert_model`` of a ``StableLmForCausalLM`` with an explicit KV cache (in memory)."""
    import openvino as ov
    import torch

    c = model.config
    n_layers, n_heads = c.num_hidden_layers, c.num_attention_heads
    head_dim = c.hidden_size // n_heads
    past_len, new_len = 3, 2
    example = (torch.randint(0, 1000, (1, new_len)), torch.ones(1, past_len + new_len, dtype=torch.long),
               torch.arange(past_len, past_len + new_len)[None],
               *[torch.randn(1, n_heads, past_len, head_dim) for _ in range(2 * n_layers)])
    shapes = ([(ov.PartialShape([1, -1]), ov.Type.i64)] * 3
              + [(ov.PartialShape([1, n_heads, -1, head_dim]), ov.Type.f32)] * (2 * n_layers))
    with torch.no_grad():
        ov_model = ov.convert_model(_kv_module(model), example_input=example, input=shapes)
    names = ["input_ids", "attention_mask", "position_ids"] + [
        f"past.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    for port, name in zip(ov_model.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    out_names = ["logits"] + [f"present.{i}.{kv}" for i in range(n_layers) for kv in ("key", "value")]
    for port, name in zip(ov_model.outputs, out_names, strict=True):
        port.get_tensor().set_names({name})
    ov_model.set_rt_info({"n_layers": n_layers, "n_heads": n_heads, "head_dim": head_dim}, "stablelm2")
    return ov_model


def compress(ov_model: Any, fmt: str) -> Any:
    """NNCF weight compression of a traced model for ``OV_INT8`` / ``OV_INT4``; other formats unchanged.

    ``OV_INT4`` is the released "INT4 for OpenVINO quantized with NNCF" (Sec. 5.1): INT4 asymmetric in
    groups of :data:`.formats.INT4_GROUP` weights, embeddings and output layer INT8.

    Raises:
        QuantError: ``fmt`` is not a known OpenVINO format.
    """
    spec = get(fmt)
    if spec.backend != "openvino":
        raise QuantError(f"{fmt} is not an OpenVINO format")
    if spec.nncf_mode is None:
        return ov_model
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedCompressionParameters, GroupSizeFallbackMode

    mode = getattr(nncf.CompressWeightsMode, spec.nncf_mode)
    if spec.nncf_mode.startswith("INT4"):
        # ADJUST: a matrix whose width is not a multiple of 128 (the small models) gets the nearest group size
        return nncf.compress_weights(ov_model, mode=mode, group_size=INT4_GROUP, ratio=1.0, advanced_parameters=
                                     AdvancedCompressionParameters(group_size_fallback_mode=GroupSizeFallbackMode.ADJUST))
    return nncf.compress_weights(ov_model, mode=mode)


def save(ov_model: Any, out: Path | str, fmt: str, meta: dict[str, Any]) -> Path:
    """Write ``model.xml``/``model.bin`` + metadata into ``out``; the folder appears whole or not at all."""
    import openvino as ov

    spec = get(fmt)
    out = Path(out)
    with atomic_dir(out) as tmp:
        tmp.mkdir()
        ov.save_model(ov_model, tmp / "model.xml", compress_to_fp16=spec.ir_fp16 or spec.nncf_mode is not None)
        atomic_write_json(tmp / META, {"format": fmt, **meta})
    return out


def export(checkpoint: Path | str, out: Path | str, fmt: str) -> Path:
    """Checkpoint folder → OpenVINO IR folder ``out`` in ``fmt`` (OV_FP32, OV_FP16, OV_INT8 or OV_INT4).

    Raises:
        QuantError: ``fmt`` is not an OpenVINO format.
        CheckpointError: ``checkpoint`` is not a complete StableLM folder.
    """
    spec = get(fmt)
    if spec.backend != "openvino":
        raise QuantError(f"{fmt} is not an OpenVINO format; use one of OV_FP32, OV_FP16, OV_INT8, OV_INT4")
    import torch
    from transformers import AutoModelForCausalLM

    check(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32, attn_implementation="sdpa").eval()
    ov_model = compress(trace(model), fmt)
    return save(ov_model, out, fmt, {"checkpoint": str(checkpoint)})


class OpenVINOEngine:
    """An OpenVINO IR on the CPU plugin (f32 inference precision) with the explicit KV cache.

    ``threads``: ``INFERENCE_NUM_THREADS``; ``precision``: ``INFERENCE_PRECISION_HINT``. Raises
    :class:`OpenVINOError` when ``model.xml`` or ``model.bin`` is missing from ``path``.
    """

    backend = "openvino"

    def __init__(self, path: Path | str, *, threads: int = 2, precision: str = "f32"):
        import openvino as ov

        path = Path(path)
        xml, binf = path / "model.xml", path / "model.bin"
        for f in (xml, binf):
            if not f.is_file():
                raise OpenVINOError(f"{f} is missing: {path} is not a complete OpenVINO IR folder")
        core = ov.Core()
        model = core.read_model(xml)
        info = model.get_rt_info()["stablelm2"]
        self.n_layers, self.n_heads, self.head_dim = (int(info[k].astype(int)) if hasattr(info[k], "astype")
                                                      else int(str(info[k])) for k in ("n_layers", "n_heads", "head_dim"))
        self.compiled = core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads,
                                                         "INFERENCE_PRECISION_HINT": precision})
        self.request = self.compiled.create_infer_request()
        self._past: list[np.ndarray] = []
        self._n = 0

    def _run(self, ids: list[int], past: list[np.ndarray], start: int) -> np.ndarray:
        n = len(ids)
        feed: dict[str, np.ndarray] = {
            "input_ids": np.asarray([ids], dtype=np.int64),
            "attention_mask": np.ones((1, start + n), dtype=np.int64),
            "position_ids": np.arange(start, start + n, dtype=np.int64)[None],
        }
        for i in range(self.n_layers):
            feed[f"past.{i}.key"] = past[2 * i]
            feed[f"past.{i}.value"] = past[2 * i + 1]
        res = self.request.infer(feed)
        self._past = [res[f"present.{i}.{kv}"] for i in range(self.n_layers) for kv in ("key", "value")]
        self._n = start + n
        return res["logits"][0]

    def _empty(self) -> list[np.ndarray]:
        return [np.zeros((1, self.n_heads, 0, self.head_dim), np.float32) for _ in range(2 * self.n_layers)]

    def logits(self, ids: list[int]) -> np.ndarray:
        """Float32 logits ``[len(ids), vocab]`` of every position of ``ids``, from an empty KV cache."""
        return np.array(self._run(ids, self._empty(), 0), dtype=np.float32)

    def prefill(self, ids: list[int]) -> np.ndarray:
        """Run ``ids`` from an empty KV cache; float32 logits ``[vocab]`` of the last position."""
        return np.array(self._run(ids, self._empty(), 0)[-1], dtype=np.float32)

    def step(self, token: int) -> np.ndarray:
        """Append ``token`` to the last call's KV cache; float32 logits ``[vocab]`` of the next position."""
        return np.array(self._run([token], self._past, self._n)[-1], dtype=np.float32)

    def close(self) -> None:
        """Release the compiled model and its infer request."""
        self.request = None
        self.compiled = None


def ir_bytes(path: Path | str) -> int:
    """Bytes of the IR on disk (``model.xml`` + ``model.bin``)."""
    path = Path(path)
    return sum((path / f).stat().st_size for f in ("model.xml", "model.bin"))


_DECOMPRESSION = {"Convert", "Subtract", "Multiply", "Reshape", "Unsqueeze"}


def _feeds_embedding(node: Any) -> bool:
    """Whether a constant flows (through weight decompression) into a Gather's data input: the embedding."""
    todo, seen = [node], set()
    while todo:
        n = todo.pop()
        for out in n.outputs():
            for target in out.get_target_inputs():
                consumer = target.get_node()
                if consumer.get_type_name() == "Gather" and target.get_index() == 0:
                    return True
                if consumer.get_type_name() in _DECOMPRESSION and id(consumer) not in seen:
                    seen.add(id(consumer))
                    todo.append(consumer)
    return False


def bytes_per_token(path: Path | str) -> int:
    """Bytes of weights one decoded token reads: every constant of the IR except the embedding table.

    The CPU plugin runs fp16 / int8 / int4 weights in their stored precision (its fully connected
    kernels decompress on the fly), so the stored bytes are what a token reads.
    """
    import openvino as ov

    model = ov.Core().read_model(Path(path) / "model.xml")
    total = 0
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant":
            continue
        out = op.output(0)
        n = int(np.prod(list(out.get_shape()), dtype=np.int64)) if len(out.get_shape()) else 1
        size = n * out.get_element_type().bitwidth // 8
        if size >= 1024 and _feeds_embedding(op):
            continue
        total += size
    return total
