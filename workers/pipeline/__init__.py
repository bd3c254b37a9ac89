"""One job's pipeline: plan, sample, fan chunks out to the localizer, checkpoint, merge,
join, build the timeline."""
