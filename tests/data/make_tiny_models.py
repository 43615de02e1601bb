"""Writes the tiny ONNX models the Rust engine tests use (run from the repo root).

`tiny-add.onnx`: y = x + 1 on a [1, 4] float tensor. Small enough to commit and to load in
milliseconds; the tests only need a real graph to build sessions on.
"""

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def tiny_add() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])
    node = helper.make_node("Add", ["x", "one"], ["y"])
    graph = helper.make_graph([node], "tiny_add", [x], [y], initializer=[one])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out = Path(__file__).parent / "tiny-add.onnx"
    onnx.save(tiny_add(), out)
    print(out)
