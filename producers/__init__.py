"""Everything that puts work on ``video.ingest``: ``vidloc submit``, the bucket bridge and the
live-stream producer (``vidloc stream``)."""

from producers.bridge import run_bridge
from producers.stream import StreamConfig, StreamProducer
from producers.submit import submit_files

__all__ = ["StreamConfig", "StreamProducer", "run_bridge", "submit_files"]
