"""Random interleavings of every transition from concurrent callers, against real SQLite and
PostgreSQL: whatever the order, a job ends in a legal state, each change of state wrote
exactly one event (in order, numbered by the job's version), and no event exists without
its change."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from job_records import output_file, queued_job, stored_file

from jobs.contract import JobEvent
from jobs.db import Database
from jobs.db import repository as repo
from jobs.errors import DeliveryLimit, InvalidTransition, JobCancelled, ProcessingFailed
from jobs.outbox import EVENT, pending_outbox
from jobs.states import JobStatus, can_transition
from jobs.store import JobStore

JOBS = 2
# Who calls what: the API cancels, bridges start, report, succeed, fail and give jobs back,
# the recovery sweep re-queues or fails orphans, the dead-letter handler fails jobs.
CALLS = (
    "cancel",
    "start",
    "progress",
    "succeed",
    "fail",
    "cancelled",
    "requeue",
    "recover",
    "dead_letter",
)
call = st.tuples(st.sampled_from(CALLS), st.integers(0, JOBS - 1), st.integers(0, 2))
callers = st.lists(st.lists(call, min_size=1, max_size=6), min_size=2, max_size=4)


async def _do(store: JobStore, name: str, job_id: str, n: int, input_id: str) -> bool:
    """One call as its caller makes it; True when it says it changed the job."""
    if name == "cancel":
        return await store.cancel(job_id)
    if name == "start":
        try:
            await store.start(job_id, f"dsp-{n}")
        except InvalidTransition:
            return False
        return True
    if name == "progress":
        await store.progress(job_id, n / 3)
        return False
    if name == "succeed":
        try:
            await store.succeed(
                job_id,
                replace(output_file(None), id=repo.new_id()),
                None,
                input_file_id=input_id,
                input_analysis=None,
                dsp_seconds=0.01,
                node_id=None,
                actor=None,
            )
        except InvalidTransition:
            return False
        return True
    if name in ("fail", "cancelled"):
        # `fail` says the state after, not whether it changed it: not counted here.
        error = JobCancelled("stop") if name == "cancelled" else ProcessingFailed("boom")
        await store.fail(job_id, error)
        return False
    if name == "requeue":
        return await store.requeue(job_id)
    if name == "recover":
        return await store.recover(job_id, attempts=n, max_attempts=2) is not None
    assert name == "dead_letter"
    return await store.dead_letter(job_id, DeliveryLimit("limit"), with_last=n == 1)


@pytest.mark.slow
@settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(plan=callers, yields=st.lists(st.booleans(), min_size=1, max_size=8))
async def test_interleaved_transitions_keep_state_and_events_in_step(
    database: Database, plan: list[list[tuple[str, int, int]]], yields: list[bool]
) -> None:
    source = await stored_file(database, "alice")
    jobs = [(await queued_job(database, source.id, "alice")).id for _ in range(JOBS)]
    before = {p.id for p in await database.run(pending_outbox, 100_000)}
    changes = dict.fromkeys(jobs, 0)
    uncounted = dict.fromkeys(jobs, 0)

    async def caller(calls: list[tuple[str, int, int]], index: int) -> None:
        store = JobStore(database)  # one process each: API, bridges, sweep, dead letters
        for step, (name, job, n) in enumerate(calls):
            if yields[(index + step) % len(yields)]:
                await asyncio.sleep(0)  # let another caller in between
            if await _do(store, name, jobs[job], n, source.id):
                changes[jobs[job]] += 1
            elif name in ("fail", "cancelled"):
                uncounted[jobs[job]] += 1

    await asyncio.gather(*(caller(calls, i) for i, calls in enumerate(plan)))

    rows = await database.run(pending_outbox, 100_000)
    events: dict[str, list[JobEvent]] = {j: [] for j in jobs}
    for p in rows:
        if p.kind == EVENT and p.id not in before:
            event = JobEvent.decode(p.body)
            events[event.job_id].append(event)
    for job_id in jobs:
        async with database.transaction() as s:
            job = await repo.get_job(s, job_id)
        stored = events[job_id]
        # One event per change, numbered 1..n in commit order: none lost, none extra.
        assert [e.version for e in stored] == list(range(1, job.version + 1)), stored
        assert all(e.owner == "alice" for e in stored)
        # Replaying the events walks the state machine and ends where the row is.
        state = JobStatus.QUEUED
        for e in stored:
            assert can_transition(state, e.status), (state, e.status, stored)
            state = e.status
        assert state is job.status
        if job.status is JobStatus.SUCCEEDED:
            assert job.output_file_id is not None and job.progress == 1.0
        # Every call that said it changed the job has its event, and only `fail` (which
        # does not say) may account for the others.
        assert changes[job_id] <= len(stored) <= changes[job_id] + uncounted[job_id]
