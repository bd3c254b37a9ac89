"""Everything that consumes ``video.ingest``: frame sources, localizers, merge, the consumer loop."""
