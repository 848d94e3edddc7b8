"""CPU per image of fetching over loopback HTTP vs reading the same files locally, side by side.

``python -m benchmarks.bench_fetch`` builds (or reuses) a corpus of photo-like
JPEG/PNG files, serves it from a keep-alive HTTP server in a child process (so
the server's CPU is not counted), then fetches every file with one
:class:`~sparkimg_ml.fetch.Fetcher` on ``--concurrency`` threads, as a Spark
task does: once by local path, once by URL, interleaved repeat by repeat so
background load hits both alike. CPU time is the process's own
(``time.process_time``: all threads of this process, nothing of the server's).

The printed figure that matters is the HTTP overhead: CPU ms per image over
HTTP minus CPU ms per image from local files (medians over the repeats).
Nothing is decoded: this isolates what the transport costs. Every fetched body
is compared with the file's bytes; the exit status is 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from sparkimg_ml.fetch import Fetcher, FetchOptions

from .corpus import DEFAULT_CACHE_DIR, Corpus, CorpusSpec, build_corpus
from .server import serve_in_subprocess


def fetch_all(sources: Sequence[str], concurrency: int) -> tuple[float, float, list[bytes]]:
    """(CPU seconds, wall seconds, bodies) of fetching ``sources`` with a fresh fetcher, as one task does."""
    cpu, wall = time.process_time(), time.perf_counter()
    with Fetcher(FetchOptions(concurrency=concurrency)) as fetcher, \
            ThreadPoolExecutor(concurrency) as pool:
        bodies = list(pool.map(fetcher.fetch, sources))
    return time.process_time() - cpu, time.perf_counter() - wall, bodies


def run(corpus: Corpus, base_url: str, repeats: int, concurrency: int) -> dict:
    ids = range(len(corpus.images))
    variants = {
        "local": [str(corpus.path(i)) for i in ids],
        "http": [base_url + corpus.url_path(i) for i in ids],
    }
    expected = [corpus.path(i).read_bytes() for i in ids]
    fetch_all(variants["http"][:50], concurrency)  # warm-up: imports, first connections, page cache
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, sources in variants.items():
            cpu, wall, bodies = fetch_all(sources, concurrency)
            if bodies != expected:
                raise SystemExit(f"{name}: fetched bodies differ from the files")
            samples[name].append((cpu, wall))
    images = len(expected)
    result = {
        name: {"cpu_ms_per_image": statistics.median(c for c, _ in runs) * 1000 / images,
               "images_per_s": images / statistics.median(w for _, w in runs)}
        for name, runs in samples.items()
    }
    result["http_minus_local_cpu_ms_per_image"] = (
        result["http"]["cpu_ms_per_image"] - result["local"]["cpu_ms_per_image"])
    result["http_over_local_cpu"] = result["http"]["cpu_ms_per_image"] / result["local"]["cpu_ms_per_image"]
    result["images"] = images
    result["mean_file_kb"] = sum(map(len, expected)) / images / 1024
    result["repeats"] = repeats
    result["concurrency"] = concurrency
    return result


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000, help="corpus files fetched per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=16, help="fetch threads, as the Param")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    corpus = build_corpus(CorpusSpec(images=args.images, parts=1, extra_columns=1), args.cache_dir)
    with serve_in_subprocess(corpus.root, latency_ms=0) as (base_url, _):
        result = run(corpus, base_url, args.repeats, args.concurrency)
    print(f"{result['images']} files, mean {result['mean_file_kb']:.1f} KB, {args.concurrency} threads, "
          f"median of {args.repeats} interleaved repeats")
    print("| variant | CPU ms/img | img/s |\n|---|---|---|")
    for name in ("local", "http"):
        print(f"| {name} | {result[name]['cpu_ms_per_image']:.3f} | {result[name]['images_per_s']:.0f} |")
    print(f"HTTP - local: {result['http_minus_local_cpu_ms_per_image']:+.3f} CPU ms/img; "
          f"HTTP / local: {result['http_over_local_cpu']:.2f}x")
    json.dump(result, sys.stderr)
    sys.stderr.write("\n")


if __name__ == "__main__":
    main()
