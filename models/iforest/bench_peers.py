"""Times the peers of Vigil's forest kernel for `cargo bench --bench iforest`, one thread each.

    python3 models/iforest/bench_peers.py SKAB_DIR DATA.f32

Fits the same forest as make_reference.py (SKAB anomaly-free.csv, 100 trees, max_samples=256,
random_state=7) and scores DATA.f32 (little-endian float32 rows of 8 features), best of 5, with:

  scikit-learn   IsolationForest.score_samples (n_jobs=1)
  treelite-gtil  the forest imported by treelite 4 (treelite.sklearn), its GTIL predictor
  tl2cgen        the same treelite model compiled to C by tl2cgen (gcc -O3 -march=native, the
                 best of plain and quantized thresholds), its predictor
  isotree        isotree's IsolationForest grown with the same parameters (ndim=1: the classic
                 algorithm) on the same data: its own forest, not the same trees

For each, prints `rows_per_s NAME N`, and for the ones that score the same forest `agree NAME X`
(largest difference from scikit-learn's scores). A peer that is not installed prints
`skipped NAME REASON`; requirements-bench.txt pins them all.
"""

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import IsolationForest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_reference import read  # noqa: E402

RUNS = 5


def best(f):
    t = float("inf")
    for _ in range(RUNS):
        start = time.perf_counter()
        f()
        t = min(t, time.perf_counter() - start)
    return t


def report(name, rows, seconds, scores=None, reference=None):
    print(f"rows_per_s {name} {rows / seconds:.0f}")
    if scores is not None:
        print(f"agree {name} {np.abs(np.asarray(scores).reshape(-1) - reference).max():.1e}")
    sys.stdout.flush()


def main():
    skab, data = Path(sys.argv[1]), sys.argv[2]
    train = read(skab / "data/anomaly-free/anomaly-free.csv")
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=7, n_jobs=1)
    forest.fit(train)
    x = np.fromfile(data, dtype="<f4").reshape(-1, 8)
    n = len(x)
    reference = -forest.score_samples(x)
    report("scikit-learn", n, best(lambda: forest.score_samples(x)))

    try:
        import treelite
        import treelite.gtil
    except ImportError as e:
        print(f"skipped treelite-gtil {e}")
        print(f"skipped tl2cgen {e}")
    else:
        model = treelite.sklearn.import_model(forest)
        y = treelite.gtil.predict(model, x, nthread=1)
        report("treelite-gtil", n, best(lambda: treelite.gtil.predict(model, x, nthread=1)), y, reference)
        try:
            import tl2cgen
        except ImportError as e:
            print(f"skipped tl2cgen {e}")
        else:
            with tempfile.TemporaryDirectory() as tmp:
                fastest = None
                for quantize in (0, 1):
                    lib = f"{tmp}/forest{quantize}.so"
                    tl2cgen.export_lib(
                        model,
                        toolchain="gcc",
                        libpath=lib,
                        params={"quantize": quantize},
                        options=["-march=native"],
                        verbose=False,
                    )
                    predictor = tl2cgen.Predictor(lib, nthread=1)
                    matrix = tl2cgen.DMatrix(x, dtype="float32")
                    y = predictor.predict(matrix)
                    t = best(lambda: predictor.predict(matrix))
                    if fastest is None or t < fastest[0]:
                        fastest = (t, y)
                report("tl2cgen", n, fastest[0], fastest[1], reference)

    try:
        import isotree
    except ImportError as e:
        print(f"skipped isotree {e}")
    else:
        iso = isotree.IsolationForest(
            ntrees=100, sample_size=256, ndim=1, nthreads=1, random_seed=7, missing_action="fail"
        ).fit(train)
        report("isotree", n, best(lambda: iso.predict(x)))


if __name__ == "__main__":
    main()
