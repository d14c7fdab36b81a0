"""What the frozen sentence encoder costs: texts embedded per second, storage per item, and what a pool of a
million items would take, for long texts (IMDB reviews, pooled over windows) and short ones (each review's first
sentence). Results: bench/results/encoder.json.

    python -m bench.encoder                       # 512 long and 2,048 short texts, batches of 64
    python -m bench.encoder --long 128 --short 512
"""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from alloop.data.files import read_records, write_json
from alloop.models.encoder import MAX_WINDOWS, WINDOW, SentenceEncoder
from alloop.models.encoder.files import fetch_encoder
from bench.device import device
from bench.label_efficiency import PLANS, ROOT, prepare_run_data

RESULTS = ROOT / "bench" / "results"
MILLION = 1_000_000


def measure(encoder: SentenceEncoder, texts: list[str], batch: int) -> dict[str, Any]:
    """Texts per second over ``texts`` (after one warm-up batch; batched by length, as :meth:`SentenceEncoder.embed`
    does), with the pieces and windows they came to."""
    encoder(tf.constant(texts[:batch]))  # traces the graph once
    pieces = encoder.tokenizer(tf.constant(texts)).row_lengths().numpy()
    span = WINDOW - 2
    windows = np.clip((np.minimum(pieces, span * encoder.max_windows) + span - 1) // span, 1, None)
    started = time.perf_counter()
    encoder.embed(texts, batch)
    seconds = time.perf_counter() - started
    rate = len(texts) / seconds
    return {
        "texts": len(texts),
        "texts_per_second": round(rate, 1),
        "pieces_median": int(np.median(pieces)),
        "windows_mean": round(float(windows.mean()), 2),
        "hours_per_million": round(MILLION / rate / 3600, 2),
    }


def first_sentence(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text.replace("<br />", " "), maxsplit=1)[0]


def report(result: dict[str, Any]) -> str:
    rows = result["texts"]
    lines = [
        f"{result['device']}; batches of {result['batch']}, at most {result['max_windows']} windows of "
        f"{result['window']} tokens per text; {result['bytes_per_item_float16']:,} bytes per item as float16 "
        f"({result['width']} values), {result['bytes_per_item_float16'] * MILLION / 1e9:.2f} GB per million items.",
        "",
        "| texts | word pieces (median) | windows (mean) | texts/s | hours per million items |",
        "|---|---|---|---|---|",
    ]
    for name, row in rows.items():
        lines.append(
            f"| {name} | {row['pieces_median']:,} | {row['windows_mean']:.2f} | {row['texts_per_second']:,.1f} | "
            f"{row['hours_per_million']:,.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", type=int, default=512, help="IMDB reviews to embed")
    parser.add_argument("--short", type=int, default=2048, help="first sentences to embed")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--cache-dir", type=Path, default=ROOT / ".cache" / "alloop")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".alloop" / "bench" / "encoder")
    parser.add_argument("--out", type=Path, default=RESULTS / "encoder.json")
    parser.add_argument("--report", action="store_true", help="print the table of --out and exit")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.loads(args.out.read_text())))
        return 0
    data = prepare_run_data(PLANS["linear"], 0, args.workdir, args.cache_dir, None, None)
    reviews = [r.text for r in read_records(data / "pool.jsonl")]
    encoder = SentenceEncoder(fetch_encoder(args.cache_dir), MAX_WINDOWS)
    result = {
        "benchmark": "encoder",
        "model": "all-MiniLM-L6-v2",
        "device": device(),
        "batch": args.batch,
        "window": WINDOW,
        "max_windows": MAX_WINDOWS,
        "width": encoder.width,
        "bytes_per_item_float16": 2 * encoder.width,
        "texts": {
            "IMDB reviews": measure(encoder, reviews[: args.long], args.batch),
            "their first sentences": measure(encoder, [first_sentence(t) for t in reviews[: args.short]], args.batch),
        },
    }
    write_json(args.out, result)
    print(report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
