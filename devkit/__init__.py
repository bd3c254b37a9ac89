"""vidloc's developer kit: never imported by the product, never shipped in its wheel or image.

- ``devkit.stack``: the local Kafka + versitygw supervisor (``vidloc stack ...``)
- ``devkit.fake_vlm``: the fake OpenAI-compatible model server (``vidloc fake-vlm``)
- ``devkit.synth``: synthetic videos with known events (tests, bench, demo)
- ``devkit.demo``: ``vidloc demo``
- ``devkit.asgi`` / ``devkit.serve_api``: uvicorn in a thread for tests and local runs
"""

__all__: list[str] = []
