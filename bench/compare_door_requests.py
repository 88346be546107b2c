"""Absolute request-conversion times of the front doors, for one or more source trees, in one
run (not a test). Each tree is imported in its own process, so two checkouts compare fairly::

    git worktree add /tmp/glmbridge-base <old-commit>
    python bench/compare_door_requests.py /tmp/glmbridge-base .

For each tree and door: the best of 4 interleaved passes, each the best of 5 rounds × 500
conversions (decode, route, convert, encode) of the fixtures ``bench_library.door_request_ops``
uses, in µs.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROUNDS, LOOPS, PASSES = 5, 500, 4


def measure(tree: str) -> None:
    """Print the per-door times of the tree this process imports (``tree`` is first on the
    path)."""
    import bench_library as bench  # type: ignore[import-not-found]

    for name, (body, door) in bench.door_request_ops().items():
        run = bench.make_door_request_op(body, door)
        for _ in range(LOOPS // 2):
            run()
        best = float("inf")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(LOOPS):
                run()
            best = min(best, (time.perf_counter() - started) / LOOPS)
        print(f"{tree}\t{name}\t{best * 1e6:.1f} µs", flush=True)


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--measure":
        tree = sys.argv[2]
        sys.path[:0] = [tree, str(Path(tree) / "bench")]
        measure(tree)
        return 0
    trees = [str(Path(t).resolve()) for t in sys.argv[1:] or ["."]]
    best: dict[tuple[str, str], float] = {}
    # The trees take turns, PASSES times: a virtual machine's speed drifts, and the minimum
    # over interleaved passes is what each tree can do.
    for _ in range(PASSES):
        for tree in trees:
            out = subprocess.run([sys.executable, __file__, "--measure", tree], check=True,
                                 capture_output=True, text=True,
                                 env={"PYTHONPATH": tree, "PATH": ""}).stdout  # fmt: skip
            for line in out.splitlines():
                where, door, micros = line.split("\t")
                key = (where, door)
                best[key] = min(best.get(key, float("inf")), float(micros.split()[0]))
    for (tree, door), micros in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{door:10} {micros:8.1f} µs  {tree}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
