"""Train scikit-learn's IsolationForest on SKAB's anomaly-free recording and export it for Vigil.

Run by hand (not in CI), from the repository root, with the pinned requirements:

    python3 -m venv /tmp/venv && /tmp/venv/bin/pip install -r models/iforest/requirements.txt
    /tmp/venv/bin/python models/iforest/make_reference.py ../shared/datasets/skab-dev

Writes, next to this script:
  skab_sklearn.onnx      the forest as ONE ai.onnx.ml TreeEnsembleRegressor node: input X (N x 8
                         float), output Y (N x 1) = the sum over trees of each row's path length
                         (depth of its leaf + c(samples at that leaf)), exactly what
                         IsolationForest.score_samples exponentiates. The ONNX metadata records
                         max_samples (psi), n_estimators, offset_ and the feature names.
  skab_sklearn.expected.csv   `file,row,score` for the first 600 rows of valve1/0.csv and
                         valve1/1.csv: -score_samples (Vigil's sign), to check Vigil's import.

The data are read from the datasets directory and never copied here.
"""

import csv
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, TensorProto
from sklearn.ensemble import IsolationForest

FEATURES = [
    "Accelerometer1RMS",
    "Accelerometer2RMS",
    "Current",
    "Pressure",
    "Temperature",
    "Thermocouple",
    "Voltage",
    "Volume Flow RateRMS",
]
HERE = Path(__file__).resolve().parent


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter=";"))
    return np.array([[float(r[c]) for c in FEATURES] for r in rows], dtype=np.float32)


def average_path_length(n):
    n = float(n)
    if n <= 1:
        return 0.0
    if n <= 2:
        return 1.0
    return 2.0 * (np.log(n - 1.0) + np.euler_gamma) - 2.0 * (n - 1.0) / n


def tree_ensemble(forest, n_features):
    """The forest as one TreeEnsembleRegressor node: leaf weight = depth + c(n_node_samples)."""
    a = {k: [] for k in ["treeids", "nodeids", "featureids", "values", "modes", "true", "false"]}
    t_tree, t_node, t_w = [], [], []
    for t, (est, feats) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
        tree = est.tree_
        depth = np.zeros(tree.node_count, dtype=np.int64)
        for i in range(tree.node_count):
            for c in (tree.children_left[i], tree.children_right[i]):
                if c != -1:
                    depth[c] = depth[i] + 1
        for i in range(tree.node_count):
            a["treeids"].append(t)
            a["nodeids"].append(i)
            leaf = tree.children_left[i] == -1
            if leaf:
                a["featureids"].append(0)
                a["values"].append(0.0)
                a["modes"].append("LEAF")
                a["true"].append(0)
                a["false"].append(0)
                t_tree.append(t)
                t_node.append(i)
                t_w.append(float(depth[i] + average_path_length(tree.n_node_samples[i])))
            else:
                # The tree saw X[:, feats]; map its feature back to the input's column.
                a["featureids"].append(int(feats[tree.feature[i]]))
                # sklearn splits on X <= threshold (float64): keep the largest float32 that is
                # <= the threshold, so float32 inputs take the same branch.
                thr = np.float32(tree.threshold[i])
                if float(thr) > tree.threshold[i]:
                    thr = np.nextafter(thr, np.float32(-np.inf))
                a["values"].append(float(thr))
                a["modes"].append("BRANCH_LEQ")
                a["true"].append(int(tree.children_left[i]))
                a["false"].append(int(tree.children_right[i]))
    node = helper.make_node(
        "TreeEnsembleRegressor",
        ["X"],
        ["Y"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=a["treeids"],
        nodes_nodeids=a["nodeids"],
        nodes_featureids=a["featureids"],
        nodes_values=a["values"],
        nodes_modes=a["modes"],
        nodes_truenodeids=a["true"],
        nodes_falsenodeids=a["false"],
        target_treeids=t_tree,
        target_nodeids=t_node,
        target_ids=[0] * len(t_tree),
        target_weights=t_w,
    )
    graph = helper.make_graph(
        [node],
        "isolation_forest_path_lengths",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="vigil models/iforest/make_reference.py",
    )
    model.ir_version = 8
    meta = {
        "max_samples": str(forest.max_samples_),
        "n_estimators": str(len(forest.estimators_)),
        "offset": repr(float(forest.offset_)),
        "features": ",".join(FEATURES),
        "trained_on": "SKAB anomaly-free.csv (9405 rows), scikit-learn 1.6.1, random_state=7",
    }
    helper.set_model_props(model, meta)
    onnx.checker.check_model(model)
    return model


def main():
    skab = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/skab-dev")
    x = read(skab / "data/anomaly-free/anomaly-free.csv")
    forest = IsolationForest(n_estimators=100, max_samples=256, random_state=7, n_jobs=1)
    forest.fit(x)
    model = tree_ensemble(forest, x.shape[1])
    onnx.save(model, HERE / "skab_sklearn.onnx")
    with open(HERE / "skab_sklearn.expected.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "row", "score"])
        for name in ["valve1/0.csv", "valve1/1.csv"]:
            rows = read(skab / "data" / name)[:600]
            scores = -forest.score_samples(rows)
            for i, s in enumerate(scores):
                w.writerow([name, i, repr(float(s))])
    print("wrote", HERE / "skab_sklearn.onnx", (HERE / "skab_sklearn.onnx").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
