"""Deploys ray_noop_app.py on a running Ray head (started by bench/peers_bench.sh) and exits.

  python ray_deploy.py GCS_ADDRESS HTTP_PORT NUM_REPLICAS

Serve's controller is a detached actor, so the application keeps running after this driver
exits; the script stops it by stopping the head. RAY_SERVE_ENABLE_HA_PROXY=1 and the HAProxy
settings come from the head's environment (they must be set before `ray start`).
"""

import sys

import ray
from ray import serve

from ray_noop_app import Noop


def main():
    address, http_port, replicas = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    ray.init(address=address, logging_level="WARNING", log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": http_port})
    app = Noop.options(num_replicas=replicas).bind()
    serve.run(app, name="noop", route_prefix="/noop", blocking=False)
    status = serve.status().applications["noop"].status
    print(f"ray_deploy: application noop {status}", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
