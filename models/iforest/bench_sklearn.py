"""Times scikit-learn's IsolationForest.score_samples (n_jobs=1) for `cargo bench --bench iforest`.

    python3 models/iforest/bench_sklearn.py SKAB_DIR DATA.f32

Fits the same forest as make_reference.py (SKAB anomaly-free.csv, 100 trees, max_samples=256,
random_state=7), scores DATA.f32 (little-endian float32 rows of 8 features) best of 3, and prints
`rows_per_s N`.
"""

import sys
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import read  # noqa: E402


def main():
    skab, data = Path(sys.argv[1]), sys.argv[2]
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=7, n_jobs=1)
    forest.fit(read(skab / "data/anomaly-free/anomaly-free.csv"))
    x = np.fromfile(data, dtype="<f4").reshape(-1, 8)
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        forest.score_samples(x)
        best = min(best, time.perf_counter() - t)
    print(f"rows_per_s {len(x) / best:.0f}")


if __name__ == "__main__":
    main()
