"""KServe v2 `infer` deployments for the worker tests."""

import numpy as np

from haproxy_serve import serve


@serve.deployment
class Affine:
    kserve_metadata = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 2]}],
        "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
    }

    def infer(self, inputs):
        x = inputs["x"]
        if x.shape == (1,) and x[0] == -1:
            return {"s": np.array(["text"])}
        if x.shape == (1,) and x[0] == -2:
            return [x]
        return {
            "y": x * 2 + 1,
            "writeable": np.array([x.flags.writeable]),
            "total": np.array(x.sum(dtype=np.float64)),
        }


@serve.deployment
class BatchedAffine:
    @serve.batch(max_batch_size=4)
    async def infer(self, batch):
        return [{"y": inputs["x"] + 10, "n": np.array([len(batch)], dtype=np.int32)}
                for inputs in batch]
