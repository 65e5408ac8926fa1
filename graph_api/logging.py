"""Structured logs: moved to `jobs.logs` so the bridge can use them without importing the API;
re-exported here so existing imports keep working."""

from jobs.logs import JobIdFilter, JsonFormatter, configure_logging, current_job_id, job_context

__all__ = ["JobIdFilter", "JsonFormatter", "configure_logging", "current_job_id", "job_context"]
