"""A BERT encoder (MiniLM's shape: 6 layers, 384 wide) in TensorFlow ops, from a Hugging Face checkpoint.

Frozen: the weights are non-trainable variables read from ``model.safetensors``, laid out as Hugging Face's
``BertModel`` names them. Only the forward pass a sentence embedding needs: token, position and token-type
embeddings, then self-attention layers with exact (erf) GELU; no pooler, no dropout.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import tensorflow as tf
from safetensors.numpy import load_file


class Bert(tf.Module):
    def __init__(self, model_dir: Path) -> None:
        super().__init__(name="bert")
        config = json.loads((model_dir / "config.json").read_text())
        if config.get("model_type") != "bert" or config.get("hidden_act") != "gelu":
            raise ValueError(f"{model_dir / 'config.json'} is not a BERT checkpoint with GELU activations")
        self.layers = int(config["num_hidden_layers"])
        self.heads = int(config["num_attention_heads"])
        self.width = int(config["hidden_size"])
        self.eps = float(config["layer_norm_eps"])
        self.max_positions = int(config["max_position_embeddings"])
        raw = load_file(str(model_dir / "model.safetensors"))
        self._w: dict[str, tf.Variable] = {}
        for name, value in raw.items():
            if name.startswith(("pooler.", "embeddings.position_ids")):
                continue
            # Dense kernels are stored (out, in); the forward pass multiplies by (in, out). Embedding tables stay.
            array = value.T if value.ndim == 2 and not name.startswith("embeddings.") else value
            self._w[name] = tf.Variable(
                np.ascontiguousarray(array, dtype=np.float32), trainable=False, name=name.replace(".", "_")
            )

    def _dense(self, x: tf.Tensor, name: str) -> tf.Tensor:
        return tf.matmul(x, self._w[f"{name}.weight"]) + self._w[f"{name}.bias"]

    def _norm(self, x: tf.Tensor, name: str) -> tf.Tensor:
        mean, variance = tf.nn.moments(x, axes=[-1], keepdims=True)
        return (x - mean) * tf.math.rsqrt(variance + self.eps) * self._w[f"{name}.weight"] + self._w[f"{name}.bias"]

    def __call__(self, ids: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Token vectors ``(rows, tokens, width)`` for ``ids`` ``(rows, tokens)``; ``mask`` is 1 where a token is."""
        w = self._w
        length = tf.shape(ids)[1]
        x = tf.gather(w["embeddings.word_embeddings.weight"], ids)
        x += w["embeddings.position_embeddings.weight"][None, :length]
        x += w["embeddings.token_type_embeddings.weight"][0]
        x = self._norm(x, "embeddings.LayerNorm")
        size = self.width // self.heads
        bias = (1.0 - tf.cast(mask, tf.float32))[:, None, None, :] * -1e9  # padding is never attended to

        def split(t: tf.Tensor) -> tf.Tensor:  # (rows, tokens, width) -> (rows, heads, tokens, size)
            return tf.transpose(tf.reshape(t, [tf.shape(t)[0], length, self.heads, size]), [0, 2, 1, 3])

        for i in range(self.layers):
            p = f"encoder.layer.{i}"
            q = split(self._dense(x, f"{p}.attention.self.query"))
            k = split(self._dense(x, f"{p}.attention.self.key"))
            v = split(self._dense(x, f"{p}.attention.self.value"))
            scores = tf.matmul(q, k, transpose_b=True) / math.sqrt(size) + bias
            context = tf.matmul(tf.nn.softmax(scores, axis=-1), v)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [tf.shape(x)[0], length, self.width])
            x = self._norm(x + self._dense(context, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            hidden = tf.nn.gelu(self._dense(x, f"{p}.intermediate.dense"), approximate=False)
            x = self._norm(x + self._dense(hidden, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        return x
