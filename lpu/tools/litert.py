"""LiteRT's interpreter (``ai-edge-litert``) as the oracle: one way to run a ``.tflite``
model on a batch, used by the tests, the bench and the fixture script."""

import numpy as np

__all__ = ["litert_invoke"]


def litert_invoke(model, x, resolver="BUILTIN_REF", all_tensors=False):
    """Run ``model`` (a path or the flatbuffer's bytes) on ``x`` (batch first) with the op
    resolver ``resolver`` (``BUILTIN_REF``: TFLite's reference kernels; ``AUTO``: the default,
    XNNPACK). Returns (output, input quantisation, output quantisation), or with
    ``all_tensors`` (reference kernels only) every int8 tensor by index as the output."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    source = {"model_content": bytes(model)} if isinstance(model, (bytes, bytearray)) \
        else {"model_path": str(model)}
    it = Interpreter(**source, experimental_op_resolver_type=getattr(OpResolverType, resolver),
                     experimental_preserve_all_tensors=all_tensors)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    it.resize_tensor_input(inp["index"], x.shape)
    it.allocate_tensors()
    it.set_tensor(inp["index"], x)
    it.invoke()
    if all_tensors:
        details = it.get_tensor_details()
        result = {d["index"]: it.get_tensor(d["index"]) for d in details if d["dtype"] == np.int8}
    else:
        result = it.get_tensor(out["index"])
    return result, inp["quantization"], out["quantization"]
