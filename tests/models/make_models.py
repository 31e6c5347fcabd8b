"""Make the real-network fixtures in this folder: small full-integer int8 ``.tflite`` models,
their int8 test inputs and what LiteRT's reference kernels score on them.

The one script that made the committed fixtures. It needs TensorFlow, which ``make test``
does not install (too big); install the extra and run it from the project root:

    .venv/bin/pip install -e .[models]
    .venv/bin/python tests/models/make_models.py

Models (all trained here, seeded; Keras 3 -> SavedModel -> TFLiteConverter, int8 in and out):

* ``digits_mlp`` / ``digits_mlp_per_tensor``: 64-32-16-10 MLP on scikit-learn's digits, dense
  weights per-channel (TF 2.21's default) and per-tensor;
* ``digits_cnn``: CONV_2D 3x3 stride 1 SAME + ReLU, CONV_2D 3x3 stride 2 VALID + ReLU6,
  MAX_POOL_2D, Flatten (SHAPE/STRIDED_SLICE/PACK/RESHAPE), FULLY_CONNECTED;
* ``digits_residual``: a residual block (two CONV_2D and an ADD with a fused ReLU), then
  AVERAGE_POOL_2D, Flatten and FULLY_CONNECTED;
* ``anomaly_ae``: MLPerf Tiny's anomaly-detection autoencoder shape,
  640-128-128-128-128-8-128-128-128-128-640, all FULLY_CONNECTED, trained briefly on synthetic
  low-rank data;
* ``digits_cnn_variety``: what the others leave out: per-tensor CONV_2D weights, stride 2
  with SAME padding, 5x5 and 1x1 kernels, AVERAGE_POOL_2D with SAME padding (windows cut by
  the border), a FULLY_CONNECTED with a fused ReLU6;
* models ``lpu run`` must refuse: ``bad_float`` (a float model), ``bad_int16`` (16x8
  quantisation: int16 activations), ``bad_softmax`` (an int8 model ending in SOFTMAX).

Writes ``<name>.tflite``, ``<name>.inputs.npy`` (int8, the model's input quantisation),
``digits_labels.npy`` and ``models.json`` (per model: task, accuracy or reconstruction error
as LiteRT's reference kernels score it on the committed inputs).
"""

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from lpu.tools.litert import litert_invoke

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
SEED = 2026
N_TEST = 200          # digits test inputs committed
N_AE = 48             # autoencoder inputs committed


def digits():
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)            # (n, 8, 8) in [0, 1]
    return train_test_split(x, d.target, test_size=N_TEST, random_state=SEED, stratify=d.target)


def ae_data(n):
    rng = np.random.default_rng(SEED)
    basis = rng.normal(size=(6, 640)).astype(np.float32)
    z = rng.normal(size=(n, 6)).astype(np.float32)
    return np.tanh(z @ basis / 4 + 0.05 * rng.normal(size=(n, 640))).astype(np.float32)


def build(name):
    import keras
    from keras import layers
    keras.utils.set_random_seed(SEED)
    if name.startswith("digits_mlp"):
        inp = keras.Input((64,))
        x = layers.Dense(32, activation="relu")(inp)
        x = layers.Dense(16, activation="relu")(x)
        out = layers.Dense(10)(x)
    elif name == "digits_cnn":
        inp = keras.Input((8, 8, 1))
        x = layers.Conv2D(8, 3, strides=1, padding="same", activation="relu")(inp)
        x = layers.Conv2D(16, 3, strides=2, padding="valid", activation="relu6")(x)
        x = layers.MaxPooling2D(2, strides=1)(x)
        x = layers.Flatten()(x)
        out = layers.Dense(10)(x)
    elif name == "digits_residual":
        inp = keras.Input((8, 8, 1))
        a = layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
        b = layers.Conv2D(8, 3, padding="same")(a)
        x = layers.ReLU()(layers.Add()([a, b]))
        x = layers.AveragePooling2D(2)(x)
        x = layers.Flatten()(x)
        out = layers.Dense(10)(x)
    elif name == "digits_cnn_variety":
        inp = keras.Input((8, 8, 1))
        x = layers.Conv2D(6, 5, strides=2, padding="same", activation="relu")(inp)
        x = layers.Conv2D(12, 1, padding="valid")(x)
        x = layers.AveragePooling2D(3, strides=1, padding="same")(x)
        x = layers.Flatten()(x)
        x = layers.Dense(24, activation="relu6")(x)
        out = layers.Dense(10)(x)
    elif name.startswith("bad_"):
        inp = keras.Input((64,))
        x = layers.Dense(16, activation="relu")(inp)
        out = layers.Dense(10, activation="softmax" if name == "bad_softmax" else None)(x)
    elif name == "anomaly_ae":
        inp = keras.Input((640,))
        x = inp
        for units in (128, 128, 128, 128, 8, 128, 128, 128, 128):
            x = layers.Dense(units, activation="relu")(x)
        out = layers.Dense(640)(x)
    else:
        raise ValueError(name)
    return keras.Model(inp, out)


def train(name, model):
    if name == "anomaly_ae":
        x = ae_data(2048)
        model.compile("adam", "mse")
        model.fit(x, x, epochs=15, batch_size=64, verbose=0)
        return x[:200]
    xtr, _, ytr, _ = digits()
    flat = name.startswith(("digits_mlp", "bad_"))
    xtr = xtr.reshape(len(xtr), -1) if flat else xtr[..., None]
    model.compile("adam", keras_loss(name), metrics=["accuracy"])
    model.fit(xtr, ytr, epochs=5 if name.startswith("bad_") else 60, batch_size=32, verbose=0)
    return xtr[:200]


def keras_loss(name):
    import keras
    return keras.losses.SparseCategoricalCrossentropy(from_logits=name != "bad_softmax")


def convert(name, model, representative):
    import tensorflow as tf
    with tempfile.TemporaryDirectory() as tmp:
        model.export(tmp, format="tf_saved_model", verbose=False)
        conv = tf.lite.TFLiteConverter.from_saved_model(tmp)
        if name == "bad_float":
            return conv.convert()
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: ([r[None]] for r in representative)
        if name == "bad_int16":
            conv.target_spec.supported_ops = [
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            conv.inference_input_type = conv.inference_output_type = tf.int16
            return conv.convert()
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
        if name == "digits_mlp_per_tensor":
            conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        if name == "digits_cnn_variety":
            conv._experimental_disable_per_channel = True
        return conv.convert()


def quantize(x, scale, zp):
    return np.clip(np.round(x / scale) + zp, -128, 127).astype(np.int8)


def main():
    _, xte, _, yte = digits()
    np.save(HERE / "digits_labels.npy", yte.astype(np.int64))
    summary = {}
    for name in ("bad_float", "bad_int16", "bad_softmax"):
        model = build(name)
        content = convert(name, model, train(name, model))
        (HERE / f"{name}.tflite").write_bytes(content)
        print(name, len(content), "bytes", flush=True)
    for name in ("digits_mlp", "digits_mlp_per_tensor", "digits_cnn", "digits_residual",
                 "digits_cnn_variety", "anomaly_ae"):
        model = build(name)
        rep = train(name, model)
        content = convert(name, model, rep)
        (HERE / f"{name}.tflite").write_bytes(content)
        from ai_edge_litert.interpreter import Interpreter
        it = Interpreter(model_content=content)
        (iscale, izp) = it.get_input_details()[0]["quantization"]
        if name == "anomaly_ae":
            xf = ae_data(2048 + N_AE)[-N_AE:]
        else:
            xf = xte.reshape(len(xte), -1) if name.startswith("digits_mlp") else xte[..., None]
        xq = quantize(xf, iscale, izp)
        np.save(HERE / f"{name}.inputs.npy", xq)
        y, _, (oscale, ozp) = litert_invoke(content, xq)
        if name == "anomaly_ae":
            recon = (y.astype(np.float32) - ozp) * oscale
            summary[name] = {"task": "reconstruction", "inputs": N_AE,
                             "mse": float(np.mean((recon - xf) ** 2))}
        else:
            summary[name] = {"task": "digits", "inputs": len(yte),
                             "accuracy": float(np.mean(np.argmax(y, axis=1) == yte))}
        summary[name]["bytes"] = len(content)
        print(name, summary[name], flush=True)
    (HERE / "models.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
