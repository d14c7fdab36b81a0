"""A small synthetic review corpus that a tiny model learns in seconds: sentiment words among filler."""

from __future__ import annotations

import json
import random
from pathlib import Path

POSITIVE = ["great", "wonderful", "superb", "loved", "brilliant", "moving", "delightful", "masterpiece"]
NEGATIVE = ["awful", "terrible", "boring", "hated", "waste", "dull", "dreadful", "mess"]
FILLER = [
    "the",
    "movie",
    "was",
    "a",
    "film",
    "plot",
    "actors",
    "and",
    "it",
    "this",
    "story",
    "scenes",
    "director",
    "cast",
]


def reviews(n: int, seed: int, prefix: str) -> list[dict[str, object]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        words = [rng.choice(FILLER) for _ in range(10)] + [
            rng.choice(POSITIVE if label else NEGATIVE) for _ in range(2)
        ]
        rng.shuffle(words)
        out.append({"id": f"{prefix}-{i:05d}", "text": " ".join(words) + " <br />", "label": label})
    return out


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def write_corpus(folder: Path) -> dict[str, Path]:
    """Small synthetic splits, as `alloop-prepare --out` names them: 120 initial, 60 val, 60 test, 200 pool."""
    return {
        "initial": write_jsonl(folder / "initial.jsonl", reviews(120, 1, "init")),
        "val": write_jsonl(folder / "val.jsonl", reviews(60, 2, "val")),
        "test": write_jsonl(folder / "test.jsonl", reviews(60, 3, "test")),
        "pool": write_jsonl(folder / "pool.jsonl", reviews(200, 4, "pool")),
    }
