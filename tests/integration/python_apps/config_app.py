"""A Python deployment configured by user_config, for the in-place reconfigure tests."""

import os

from haproxy_serve import serve


@serve.deployment
class Configured:
    def __init__(self):
        self.greeting = "unset"

    def reconfigure(self, config):
        if config.get("fail"):
            raise ValueError(f"refused greeting {config.get('greeting')}")
        self.greeting = config["greeting"]

    def __call__(self, request):
        return f"{self.greeting} pid={os.getpid()}"


app = Configured.bind()
