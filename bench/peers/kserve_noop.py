"""The no-op of bench/peers_bench.sh as a KServe Python model, served by kserve.ModelServer.

POST /v1/models/noop:predict with {"instances": [...]} answers {"predictions": [...]}: KServe's
server parses the JSON body, this model returns the instances, KServe writes the JSON reply.

  python kserve_noop.py --http_port PORT --workers N --enable_grpc false
"""

import argparse

import kserve


class Noop(kserve.Model):
    def __init__(self, name: str):
        super().__init__(name)
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):
        return {"predictions": payload["instances"]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    args, _ = parser.parse_known_args()
    kserve.ModelServer().start([Noop("noop")])
