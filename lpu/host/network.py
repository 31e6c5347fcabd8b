"""Real networks: a full-integer int8 ``.tflite`` model, compiled onto the tile layer by layer.

:func:`load_model` parses the flatbuffer with the ``tflite`` package (no TensorFlow) into
layers; :func:`run_network` runs them on a back end and returns every layer's output tensor
and a per-layer report. What each operator computes is TFLite's reference kernels' int8
arithmetic (the oracle in the tests is LiteRT's interpreter itself, ``tests/test_tflite.py``):

* on the tile, one GEMM per layer (``lpu.host.compiler``), batch and output pixels as GEMM
  rows: ``FULLY_CONNECTED`` (weights ``(out, in)``) and ``CONV_2D`` (any stride, ``SAME`` or
  ``VALID``, dilation 1; im2col on the host, padding with the input's zero point, so a padded
  tap contributes ``(zp - zp) * w = 0`` as in the reference kernel), per-tensor or per-channel
  weights, fused ``NONE``/``RELU``/``RELU6``;
* on the host: ``RESHAPE`` (the ``SHAPE``/``STRIDED_SLICE``/``PACK`` arithmetic the converter
  emits for a Keras ``Flatten`` is folded: the output's static shape, batch replaced, is the
  shape), ``MAX_POOL_2D``, ``AVERAGE_POOL_2D`` and ``ADD``, bit-exact with the reference
  kernels.

Requantisation multipliers come from the float32 scales exactly as TFLite's ``Prepare``
computes them (``QuantizeMultiplier`` on ``double(in) * double(filter) / double(out)``).

Rounding (:data:`ROUNDING_POLICIES`), chosen per layer (the tile's parameter rows carry it):
``single`` is what LiteRT does today, measured against its reference kernels
(``ai-edge-litert`` 2.3, ``BUILTIN_REF``) on every layer of the fixtures: its
``FULLY_CONNECTED`` rounds once, while its ``CONV_2D`` and ``ADD`` still round twice
(gemmlowp); ``double`` is gemmlowp's double rounding everywhere (TFLite builds without
``TFLITE_SINGLE_ROUNDING``, CMSIS-NN).
"""

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from model.vxm import multiply_by_quantized_multiplier

from .compiler import Quant

__all__ = ["NetworkError", "Layer", "Network", "load_model", "run_network",
           "quantize_multiplier", "TILE_OPS", "HOST_OPS", "ROUNDING_POLICIES"]

TILE_OPS = ("FULLY_CONNECTED", "CONV_2D")
HOST_OPS = ("RESHAPE", "MAX_POOL_2D", "AVERAGE_POOL_2D", "ADD")
SHAPE_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")      # folded into RESHAPE
ACTIVATIONS = {0: "NONE", 1: "RELU", 3: "RELU6"}

# --rounding -> the rounding of each operator's requantisation. "single" follows LiteRT 2.3's
# reference kernels operator by operator (measured: tests/test_tflite.py fails if it changes)
ROUNDING_POLICIES = {
    "single": {"FULLY_CONNECTED": "single", "CONV_2D": "double", "ADD": "double"},
    "double": {"FULLY_CONNECTED": "double", "CONV_2D": "double", "ADD": "double"},
}


class NetworkError(ValueError):
    """The model cannot run here: the message names the operator or the problem."""


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple           # static shape (batch 1)
    dtype: str             # "int8", "int32", "float32", ...
    scale: np.ndarray      # float32, one per tensor or per channel
    zero_point: np.ndarray
    data: np.ndarray | None = None     # constant tensors


@dataclass
class Layer:
    index: int
    op: str
    inputs: list
    outputs: list
    options: dict = field(default_factory=dict)

    @property
    def on_tile(self):
        return self.op in TILE_OPS


@dataclass
class Network:
    tensors: dict
    layers: list
    input: int
    output: int

    def input_tensor(self):
        return self.tensors[self.input]


# ---- TFLite's quantisation helpers ------------------------------------------------------
def tflite_round(x):
    """TfLiteRound (std::round): half away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def quantize_multiplier(real, rounding="single"):
    """TFLite ``QuantizeMultiplier``: a double -> (int32 multiplier, shift)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    if rounding == "single" and shift > 30:
        shift, q_fixed = 30, (1 << 31) - 1
    return int(q_fixed), int(shift)


def activation_range(act, scale, zero_point):
    """TFLite ``CalculateActivationRangeQuantized`` for int8."""
    def quantize(f):        # zero_point + TfLiteRound(f / scale), the division in float32
        return int(zero_point) + int(tflite_round(float(np.float32(f) / np.float32(scale))))
    lo, hi = -128, 127
    if act == "RELU":
        return max(lo, quantize(0.0)), hi
    if act == "RELU6":
        return max(lo, quantize(0.0)), min(hi, quantize(6.0))
    return lo, hi


def compute_padding(padding, in_size, filter_size, stride):
    """TFLite ``ComputeOutSize`` and ``ComputePaddingWithOffset`` (dilation 1): (output size,
    padding before, padding after)."""
    if padding == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size + stride - filter_size) // stride
    total = max(0, (out - 1) * stride + filter_size - in_size)
    return out, total // 2, total - total // 2


# ---- parsing ---------------------------------------------------------------------------
_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16",
          9: "int8"}


def _names(enum_class):
    return {v: k for k, v in vars(enum_class).items() if not k.startswith("_")}


def load_model(path):
    """Parse ``path`` into a :class:`Network`; :class:`NetworkError` names what cannot run."""
    import tflite
    p = Path(path)
    if not p.is_file():
        raise NetworkError(f"model file '{path}' not found")
    buf = p.read_bytes()
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise NetworkError(f"model file '{path}' is not a TFLite flatbuffer")
    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() != 1:
            raise NetworkError(f"model '{path}' has {model.SubgraphsLength()} subgraphs; "
                               f"lpu run runs single-subgraph models")
        return _parse(model, _names(tflite.BuiltinOperator))
    except NetworkError:
        raise
    except Exception as e:                  # a corrupt flatbuffer fails anywhere inside
        raise NetworkError(f"model file '{path}' could not be parsed ({type(e).__name__})") from None


def _tensor(model, sg, i):
    t = sg.Tensors(i)
    q = t.Quantization()
    has_q = q is not None and q.ScaleLength() > 0
    data = None
    b = model.Buffers(t.Buffer())
    if b is not None and b.DataLength() > 0:
        data = np.frombuffer(b.DataAsNumpy().tobytes(), dtype=_TYPES.get(t.Type(), "uint8"))
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        data = data.reshape(shape) if shape else data.reshape(())
    return Tensor(
        index=i, name=t.Name().decode(errors="replace"),
        shape=tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else (),
        dtype=_TYPES.get(t.Type(), f"type{t.Type()}"),
        scale=q.ScaleAsNumpy().astype(np.float32) if has_q else np.zeros(0, np.float32),
        zero_point=q.ZeroPointAsNumpy().astype(np.int64) if has_q else np.zeros(0, np.int64),
        data=data)


def _options(op, op_name):
    import tflite
    table = op.BuiltinOptions()
    if table is None:
        return {}
    cls = {"FULLY_CONNECTED": tflite.FullyConnectedOptions, "CONV_2D": tflite.Conv2DOptions,
           "MAX_POOL_2D": tflite.Pool2DOptions, "AVERAGE_POOL_2D": tflite.Pool2DOptions,
           "ADD": tflite.AddOptions}.get(op_name)
    if cls is None:
        return {}
    o = cls()
    o.Init(table.Bytes, table.Pos)
    padding = {0: "SAME", 1: "VALID"}
    out = {"activation": o.FusedActivationFunction()}
    if op_name == "CONV_2D":
        out.update(padding=padding[o.Padding()], stride=(o.StrideH(), o.StrideW()),
                   dilation=(o.DilationHFactor(), o.DilationWFactor()))
    elif op_name in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        out.update(padding=padding[o.Padding()], stride=(o.StrideH(), o.StrideW()),
                   filter=(o.FilterHeight(), o.FilterWidth()))
    elif op_name == "FULLY_CONNECTED":
        out.update(keep_num_dims=bool(o.KeepNumDims()), weights_format=o.WeightsFormat())
    return out


def _parse(model, opnames):
    sg = model.Subgraphs(0)
    tensors = {i: _tensor(model, sg, i) for i in range(sg.TensorsLength())}
    inputs, outputs = list(sg.InputsAsNumpy()), list(sg.OutputsAsNumpy())
    if len(inputs) != 1 or len(outputs) != 1:
        raise NetworkError(f"the model has {len(inputs)} inputs and {len(outputs)} outputs; "
                           f"lpu run runs models with one of each")
    for what, i in (("input", inputs[0]), ("output", outputs[0])):
        t = tensors[int(i)]
        if t.dtype == "float32":
            raise NetworkError(f"the model's {what} is float32: a float model; lpu run needs a "
                               f"full-integer int8 model")
        if t.dtype != "int8":
            raise NetworkError(f"the model's {what} is {t.dtype}; lpu run needs a full-integer "
                               f"int8 model")
    layers = []
    for k in range(sg.OperatorsLength()):
        op = sg.Operators(k)
        code = model.OperatorCodes(op.OpcodeIndex())
        name = opnames.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        if name not in TILE_OPS + HOST_OPS + SHAPE_OPS:
            raise NetworkError(f"operator {name} (layer {k}) is not supported: lpu run runs "
                               f"{', '.join(TILE_OPS + HOST_OPS)}")
        layer = Layer(k, name, [int(i) for i in op.InputsAsNumpy()],
                      [int(i) for i in op.OutputsAsNumpy()], _options(op, name))
        _check(layer, tensors)
        layers.append(layer)
    return Network(tensors, layers, int(inputs[0]), int(outputs[0]))


def _check(layer, tensors):
    where = f"operator {layer.op} (layer {layer.index})"
    if layer.op in SHAPE_OPS:
        return
    acts = [tensors[i] for i in layer.inputs[:1] + layer.outputs]
    if layer.op == "ADD":
        acts = [tensors[i] for i in layer.inputs + layer.outputs]
    for t in acts:
        if t.dtype != "int8":
            raise NetworkError(f"{where}: tensor '{t.name}' is {t.dtype}; lpu run needs int8 "
                               f"activations (a float or int16 model?)")
    act = layer.options.get("activation", 0)
    if layer.op != "RESHAPE" and act not in ACTIVATIONS:
        raise NetworkError(f"{where}: fused activation {act} is not supported "
                           f"(NONE, RELU, RELU6)")
    if layer.op in TILE_OPS:
        w = tensors[layer.inputs[1]]
        if w.dtype != "int8" or w.data is None:
            raise NetworkError(f"{where}: weights must be constant int8, got {w.dtype}")
        if np.any(w.zero_point != 0):
            raise NetworkError(f"{where}: weights must be symmetric (zero point 0)")
    if layer.op == "CONV_2D" and layer.options["dilation"] != (1, 1):
        raise NetworkError(f"{where}: dilation {layer.options['dilation']} is not supported "
                           f"(1 only)")
    if layer.op == "FULLY_CONNECTED" and layer.options.get("weights_format", 0) != 0:
        raise NetworkError(f"{where}: shuffled weights are not supported")
    if layer.op == "ADD":
        a, b = (tensors[i] for i in layer.inputs)
        if a.shape != b.shape:
            raise NetworkError(f"{where}: broadcasting ADD ({a.shape} + {b.shape}) is not "
                               f"supported")


# ---- the tile layers as GEMMs -----------------------------------------------------------
def _requant(net, layer, rounding):
    """Quant of a tile layer: per-channel multipliers from the float32 scales."""
    t = net.tensors
    x, w, y = t[layer.inputs[0]], t[layer.inputs[1]], t[layer.outputs[0]]
    n_out = w.shape[0]
    wscale = np.resize(w.scale, n_out)
    mult, shift = zip(*[quantize_multiplier(float(x.scale[0]) * float(s) / float(y.scale[0]),
                                            rounding) for s in wscale])
    act = ACTIVATIONS[layer.options.get("activation", 0)]
    lo, hi = activation_range(act, y.scale[0], y.zero_point[0])
    return Quant(multiplier=np.array(mult, np.int64), shift=np.array(shift, np.int64),
                 output_zero_point=int(y.zero_point[0]), input_zero_point=int(x.zero_point[0]),
                 activation_min=lo, activation_max=hi, rounding=rounding)


def im2col(x, kh, kw, stride, padding, pad_value):
    """(N, H, W, C) int8 -> ((N * OH * OW, KH * KW * C) patches, (N, OH, OW)), padded with
    ``pad_value``; patch order (kh, kw, c) as TFLite's OHWI filters are laid out."""
    N, H, W, C = x.shape
    oh, top, bottom = compute_padding(padding, H, kh, stride[0])
    ow, left, right = compute_padding(padding, W, kw, stride[1])
    xp = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=pad_value)
    ys = np.arange(oh) * stride[0]
    xs = np.arange(ow) * stride[1]
    cols = np.empty((N, oh, ow, kh, kw, C), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            cols[:, :, :, i, j, :] = xp[:, ys[:, None] + i, xs[None, :] + j, :]
    return cols.reshape(N * oh * ow, kh * kw * C), (N, oh, ow)


def tile_gemm(net, layer, x, rounding):
    """The GEMM that computes a tile layer: (A, B, bias, quant, output shape)."""
    t = net.tensors
    w = t[layer.inputs[1]].data
    bias_t = t[layer.inputs[2]] if len(layer.inputs) > 2 and layer.inputs[2] >= 0 else None
    bias = None if bias_t is None else bias_t.data.astype(np.int32)
    q = _requant(net, layer, rounding)
    if layer.op == "FULLY_CONNECTED":
        K = w.shape[1]
        A = x.reshape(-1, K)
        out_shape = (A.shape[0], w.shape[0])
        return A, np.ascontiguousarray(w.T), bias, q, out_shape
    cout, kh, kw, _ = w.shape
    A, (N, oh, ow) = im2col(x, kh, kw, layer.options["stride"], layer.options["padding"],
                            q.input_zero_point)
    return A, np.ascontiguousarray(w.reshape(cout, -1).T), bias, q, (N, oh, ow, cout)


# ---- the host layers -------------------------------------------------------------------
def _pool(x, layer, kind, lo, hi):
    N, H, W, C = x.shape
    fh, fw = layer.options["filter"]
    sh, sw = layer.options["stride"]
    oh, top, _ = compute_padding(layer.options["padding"], H, fh, sh)
    ow, left, _ = compute_padding(layer.options["padding"], W, fw, sw)
    out = np.empty((N, oh, ow, C), np.int64)
    for i in range(oh):
        y0 = i * sh - top
        ya, yb = max(0, y0), min(H, y0 + fh)
        for j in range(ow):
            x0 = j * sw - left
            xa, xb = max(0, x0), min(W, x0 + fw)
            win = x[:, ya:yb, xa:xb, :].astype(np.int64)
            if kind == "MAX_POOL_2D":
                out[:, i, j, :] = win.max(axis=(1, 2))
            else:
                count = (yb - ya) * (xb - xa)
                s = win.sum(axis=(1, 2))
                # round half away from zero, C division truncating toward zero
                num = np.where(s > 0, s + count // 2, s - count // 2)
                out[:, i, j, :] = np.sign(num) * (np.abs(num) // count)
    return np.clip(out, lo, hi).astype(np.int8)


def _add(net, layer, a, b, rounding):
    """TFLite's int8 ADD: both inputs rescaled to twice the larger scale, left shift 20."""
    t = net.tensors
    ta, tb, ty = (t[i] for i in layer.inputs + layer.outputs)
    left_shift = 20
    twice_max = 2 * max(float(ta.scale[0]), float(tb.scale[0]))
    m1, s1 = quantize_multiplier(float(ta.scale[0]) / twice_max, rounding)
    m2, s2 = quantize_multiplier(float(tb.scale[0]) / twice_max, rounding)
    mo, so = quantize_multiplier(twice_max / float(np.float32((1 << left_shift) * ty.scale[0])),
                                 rounding)
    x1 = (a.astype(np.int64) - ta.zero_point[0]) << left_shift
    x2 = (b.astype(np.int64) - tb.zero_point[0]) << left_shift
    raw = (multiply_by_quantized_multiplier(x1, m1, s1, rounding) +
           multiply_by_quantized_multiplier(x2, m2, s2, rounding))
    out = multiply_by_quantized_multiplier(raw, mo, so, rounding) + ty.zero_point[0]
    lo, hi = activation_range(ACTIVATIONS[layer.options.get("activation", 0)], ty.scale[0],
                              ty.zero_point[0])
    return np.clip(out, lo, hi).astype(np.int8)


def host_layer(net, layer, values, batch, rounding):
    """The output of a host layer from its inputs' values."""
    t = net.tensors
    x = values[layer.inputs[0]]
    if layer.op == "RESHAPE":
        return x.reshape((batch,) + tuple(t[layer.outputs[0]].shape[1:]))
    if layer.op == "ADD":
        return _add(net, layer, x, values[layer.inputs[1]], rounding)
    y = t[layer.outputs[0]]
    lo, hi = activation_range(ACTIVATIONS[layer.options.get("activation", 0)], y.scale[0],
                              y.zero_point[0])
    return _pool(x, layer, layer.op, lo, hi)


# ---- running a network ------------------------------------------------------------------
def check_input(net, x):
    t = net.input_tensor()
    if x.dtype != np.int8:
        raise NetworkError(f"INPUT must have dtype int8 (the model's input), got {x.dtype}")
    want = t.shape[1:]
    if x.ndim != len(t.shape) or tuple(x.shape[1:]) != tuple(want) or x.shape[0] < 1:
        shape = ", ".join(["N"] + [str(d) for d in want])
        raise NetworkError(f"INPUT must have shape ({shape}) with N >= 1, got {x.shape}")


def run_network(net, x, gemm, rounding="single"):
    """Run ``net`` on ``x`` (int8, batch first). ``gemm(A, B, bias, quant) -> (out,
    counters, plan)`` runs one tile layer on a back end; ``rounding`` names a policy of
    :data:`ROUNDING_POLICIES`. Returns (every tensor's value by index, per-layer records)."""
    if rounding not in ROUNDING_POLICIES:
        raise NetworkError(f"unknown rounding '{rounding}' (choose: {', '.join(ROUNDING_POLICIES)})")
    policy = ROUNDING_POLICIES[rounding]
    check_input(net, x)
    batch = x.shape[0]
    values = {net.input: x}
    records = []
    for layer in net.layers:
        if layer.op in SHAPE_OPS:          # shape arithmetic, folded into RESHAPE
            continue
        rec = {"layer": layer.index, "op": layer.op, "where": "tile" if layer.on_tile else "host",
               "rounding": policy.get(layer.op)}
        if layer.on_tile:
            A, B, bias, q, out_shape = tile_gemm(net, layer, values[layer.inputs[0]],
                                                 policy[layer.op])
            out, counters, plan = gemm(A, B, bias, q)
            values[layer.outputs[0]] = out.reshape(out_shape)
            rec.update(gemm=(plan.M, plan.K, plan.N), macs=plan.macs, runs=len(plan.runs),
                       counters=counters, plan=plan)
        else:
            values[layer.outputs[0]] = host_layer(net, layer, values, batch, policy.get(layer.op))
        records.append(rec)
    return values, records
