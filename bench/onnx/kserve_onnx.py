"""The peer of bench/onnx/serve.py for the image model: KServe's Python model server
(the `kserve` package) with a custom predictor running the same ONNX graph on Python
onnxruntime, as KServe's documentation has users write one. Outputs are binary when
the request asks for binary outputs (as aiaas answers)."""

import argparse

import kserve
import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxPredictor(Model):
    def __init__(self, name, path, threads):
        super().__init__(name)
        self.path, self.threads = path, threads
        self.load()

    def load(self):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(self.path, opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self.output = self.session.get_outputs()[0].name
        self.ready = True
        return self.ready

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        y = self.session.run([self.output], {self.input: x})[0]
        binary = any(bool(o.binary_data) for o in (payload.request_outputs or []))
        out = InferOutput(name=self.output, shape=list(y.shape), datatype="FP32")
        out.set_data_from_numpy(y, binary_data=binary)
        return InferResponse(model_name=self.name, infer_outputs=[out], response_id=payload.id or "")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_path", required=True)
    parser.add_argument("--threads", type=int, default=2)
    args, _ = parser.parse_known_args()
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, enable_grpc=False).start(
        [OnnxPredictor(args.model_name, args.model_path, args.threads)])
