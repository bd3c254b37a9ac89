"""Live streams: one growing timeline per stream, a segment at a time."""
