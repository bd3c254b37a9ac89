"""Everything that puts work on ``video.ingest``: ``vidloc submit`` and the bucket bridge."""
