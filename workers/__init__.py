"""Everything that consumes ``video.ingest``: frame sources, localizers, merge, consumer loop."""
