"""The only package that composes stages: the jobs (:mod:`~hwnas.pipeline.jobs`) and the quickstart
(:mod:`~hwnas.pipeline.end_to_end`) — wiring, no stage logic. The CLI and ``hwnas.profile/search/
export/verify`` call these."""

from hwnas.pipeline.jobs import configure, export, measure_archs, profile, quickstart, search, verify

__all__ = ["configure", "export", "measure_archs", "profile", "quickstart", "search", "verify"]
