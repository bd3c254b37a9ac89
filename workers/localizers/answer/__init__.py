"""Reading model answers: JSON, times, items, and the one re-ask when nothing could be read."""
