"""Sensors: the SLA clock, ticking every minute.

The SLA clock does its work in the sensor tick itself (it launches no run): it asks the policy's
escalation ladders which steps are due for the open cases (`models.ladder.due_escalations`),
applies them in the queue store (`QueueStore.apply_escalations`, idempotent by step key, so two
ticks never escalate twice) and delivers due notifications from the outbox. Checking SLAs every
minute, not hourly, is the point: a P1 with a 15-minute first-touch target cannot wait an hour.
"""

from datetime import UTC, datetime

import dagster as dg

from connectors.notify import NotifierResource
from connectors.policy_source import PolicyResource
from connectors.queue_store import QueueStoreResource
from models.ladder import due_escalations


def run_sla_tick(queue: QueueStoreResource, policy: PolicyResource, notifier: NotifierResource, *, now: datetime) -> dict:
    """One tick of the SLA clock; returns what it did (also used by tests and the CLI)."""
    store = queue.get_client()
    pol = policy.load()
    inputs = store.sla_inputs(now=now)
    steps = due_escalations(
        inputs.open_cases,
        pol,
        now,
        pauses=inputs.pauses,
        already_applied=inputs.applied_step_keys,
        member_load=inputs.member_load,
    )
    applied = store.apply_escalations(steps, now=now)
    delivery = notifier.deliver(store, now=now)
    return {
        "open_cases": len(inputs.open_cases),
        "steps_due": len(steps),
        "steps_applied": applied,
        "notifications_delivered": delivery.delivered,
        "notifications_failed": delivery.failed,
        "notifications_dead": delivery.dead,
    }


@dg.sensor(
    name="sla_clock",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Every minute: pre-breach warnings, escalation ladder steps and notification delivery.",
)
def sla_clock(
    context: dg.SensorEvaluationContext,
    queue: QueueStoreResource,
    policy: PolicyResource,
    notifier: NotifierResource,
) -> dg.SkipReason:
    done = run_sla_tick(queue, policy, notifier, now=datetime.now(UTC))
    summary = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items())
    context.log.info(summary)
    return dg.SkipReason(summary)


all_sensors = [sla_clock]
