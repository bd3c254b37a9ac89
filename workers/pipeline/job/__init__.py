"""One job: an ingest event in, a stored timeline out.

fetch object -> probe -> plan -> sample (streamed) -> localize chunk by chunk (concurrently, with
checkpoints) -> merge -> store timeline. The consumer loop around it owns Kafka; this package
owns the order of the work and nothing about transport.

- :mod:`~workers.pipeline.job.runner`: :class:`JobRunner`, which path an event takes, and the
  plain one (download, probe, pre-pass, plan);
- :mod:`~workers.pipeline.job.work`: the planned job: handed off, one span's chunks, or the
  whole video localized, finished and stored;
- :mod:`~workers.pipeline.job.long_video`: a long video's hand-off, span runs, partial
  timelines and merge, read by ranges;
- :mod:`~workers.pipeline.job.reask`: a later analysis on the frames the frame cache keeps;
- :mod:`~workers.pipeline.job.frames`: where the frames come from, and keeping them;
- :mod:`~workers.pipeline.job.finish`: the chunks' answers merged, refined, made a timeline;
- :mod:`~workers.pipeline.job.outcomes` and :mod:`~workers.pipeline.job.context`: what a job
  takes and gives back.
"""

from workers.pipeline.job.outcomes import HandOff, JobOutcome, JobStore, ProgressFn, SpanOutcome
from workers.pipeline.job.runner import JobRunner

__all__ = ["HandOff", "JobOutcome", "JobRunner", "JobStore", "ProgressFn", "SpanOutcome"]
