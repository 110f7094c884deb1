"""`python -m bench [name ...]`: run the benchmarks (all by default), in pipeline order.

Each `bench/bench_<name>.py` has a `main() -> None` that prints its figures and writes them to
bench/results/. The full preset is generated once into BENCH_DATA_DIR (data/bench/) and reused.
"""

from __future__ import annotations

import importlib
import sys

ORDER = ["generate", "realism", "dbt", "gate", "train", "serve", "serve_hardening"]


def main(argv: list[str]) -> int:
    names = argv or ORDER
    for name in names:
        module = importlib.import_module(f"bench.bench_{name}")
        print(f"== bench {name}", flush=True)
        module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
