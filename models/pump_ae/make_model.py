"""A linear autoencoder (PCA) over a window of a pump's channels, trained on SKAB's anomaly-free
recording and written as a small ONNX graph for Vigil's `onnx` detector.

Run by hand (not in CI), from the repository root, with models/iforest/requirements.txt:

    /tmp/venv/bin/python models/pump_ae/make_model.py ../shared/datasets/skab-dev

The model takes X: (N, WINDOW * 8) float, the last WINDOW records of the eight SKAB channels, oldest
first, and outputs Y of the same shape: X standardised, projected on the top K principal axes of
the training windows, mapped back and un-standardised, i.e. its reconstruction. Vigil scores a
window by the mean of ((X - Y) / scale)^2 over its values, scale = the training standard deviation
(see manifest.toml). Writes pump_ae.onnx and pump_ae.expected.csv (the score of the first 300
windows of valve1/0.csv and valve1/1.csv, computed here in float64 from the ONNX Runtime output).
"""

import csv
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "iforest"))
from make_reference import FEATURES, read  # noqa: E402

WINDOW = 4
K = 6


def windows(x):
    n = len(x) - WINDOW + 1
    return np.stack([x[i : i + WINDOW].reshape(-1) for i in range(n)]).astype(np.float32)


def main():
    skab = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/skab-dev")
    train = windows(read(skab / "data/anomaly-free/anomaly-free.csv"))
    mean = train.mean(axis=0)
    std = train.std(axis=0) + 1e-6
    z = (train - mean) / std
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    w = vt[:K].T.astype(np.float32)  # (D, K)
    d = train.shape[1]
    init = [
        numpy_helper.from_array(mean.astype(np.float32), "mean"),
        numpy_helper.from_array(std.astype(np.float32), "std"),
        numpy_helper.from_array(w, "encode"),
        numpy_helper.from_array(np.ascontiguousarray(w.T), "decode"),
    ]
    nodes = [
        helper.make_node("Sub", ["X", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["z"]),
        helper.make_node("MatMul", ["z", "encode"], ["code"]),
        helper.make_node("MatMul", ["code", "decode"], ["z_hat"]),
        helper.make_node("Mul", ["z_hat", "std"], ["scaled"]),
        helper.make_node("Add", ["scaled", "mean"], ["Y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "pump_window_autoencoder",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, d])],
        init,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17)],
        producer_name="vigil models/pump_ae/make_model.py",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, HERE / "pump_ae.onnx")

    import onnxruntime as ort

    sess = ort.InferenceSession(str(HERE / "pump_ae.onnx"))
    with open(HERE / "pump_ae.expected.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "window_end_row", "score"])
        for name in ["valve1/0.csv", "valve1/1.csv"]:
            x = windows(read(skab / "data" / name)[: 300 + WINDOW - 1])
            y = sess.run(None, {"X": x})[0]
            score = (((x.astype(np.float64) - y) / std) ** 2).mean(axis=1)
            for i, s in enumerate(score):
                out.writerow([name, i + WINDOW - 1, repr(float(s))])
    # The threshold: the 99.9th percentile of the training windows' scores.
    y = sess.run(None, {"X": train})[0]
    train_score = (((train.astype(np.float64) - y) / std) ** 2).mean(axis=1)
    threshold = float(np.quantile(train_score, 0.999))
    channels = ", ".join(f'"{c}"' for c in FEATURES)
    scale = ", ".join(repr(float(s)) for s in std)
    (HERE / "manifest.toml").write_text(f"""# Written by make_model.py: do not edit by hand.
name = "pump-ae"
version = "1"
kind = "onnx"
file = "pump_ae.onnx"
description = "Linear autoencoder (PCA, {K} of {d} components) over the last {WINDOW} records of a pump's 8 channels"

[input]
name = "X"
channels = [{channels}]
window = {WINDOW}

[output]
name = "Y"
meaning = "reconstruction"
# score = mean over the window's values of ((x - y) / scale)^2
scale = [{scale}]
threshold = {threshold!r}

[provenance]
script = "models/pump_ae/make_model.py"
trained_on = "SKAB anomaly-free.csv ({len(train)} windows), numpy SVD, float32 weights"
threshold_rule = "99.9th percentile of the training windows' scores"
""")
    print("wrote", HERE / "pump_ae.onnx", (HERE / "pump_ae.onnx").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
