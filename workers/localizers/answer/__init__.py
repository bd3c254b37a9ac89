"""Reading model answers: JSON, times, items, and the one re-ask when nothing could be read."""

from workers.localizers.answer.read import ParsedAnswer, parse_answer
from workers.localizers.answer.reask import reask_messages

__all__ = [
    "ParsedAnswer",
    "parse_answer",
    "reask_messages",
]
