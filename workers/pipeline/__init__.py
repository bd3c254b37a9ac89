"""One job's pipeline: plan, sample, fan chunks out to the localizer, checkpoint, merge,
join, build the timeline."""

from workers.pipeline.estimate import estimate_file
from workers.pipeline.job import JobOutcome, JobRunner, JobStore, ProgressFn
from workers.pipeline.merge import merge_events
from workers.pipeline.planning import JobPlan, PlanConfig, make_plan

__all__ = [
    "JobOutcome",
    "JobPlan",
    "JobRunner",
    "JobStore",
    "PlanConfig",
    "ProgressFn",
    "estimate_file",
    "make_plan",
    "merge_events",
]
