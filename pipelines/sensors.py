"""Sensors: the SLA clock, ticking every minute, and the rescue-actions sensor.

The SLA clock does its work in the sensor tick itself (it launches no run): it puts snoozed cases
whose wake-up time has come back to work (`QueueStore.wake_snoozed`, audited), asks the policy's
escalation ladders which steps are due for the open cases (`models.cases.ladder.due_escalations`),
applies them in the queue store (`QueueStore.apply_escalations`, idempotent by step key, so two
ticks never escalate twice) and delivers due notifications from the outbox. Checking SLAs every
minute, not hourly, is the point: a P1 with a 15-minute first-touch target cannot wait an hour.

The rescue-actions sensor reacts to the rescue team's work without waiting for the daily run:
when a play is logged or a CRM write is queued (a resolution, say), it requests a `feedback_job`
run (CRM write-back, rescue outcomes, play effectiveness). Its cursor is the latest rescue action
id and pending CRM outbox id it has seen, and the run key is that cursor, so one new item leads
to one run, however many ticks see it. The same tick records an observation of the external
asset `rescue_actions` (the team's work in the queue store), so lineage shows when it last changed.
"""

from datetime import UTC, datetime

import dagster as dg

from connectors.notify import NotifierResource
from connectors.policy_source import PolicyResource
from connectors.queue.resource import QueueStoreResource
from models.cases.ladder import due_escalations
from pipelines.jobs import feedback_job


def run_sla_tick(queue: QueueStoreResource, policy: PolicyResource, notifier: NotifierResource, *, now: datetime) -> dict:
    """One tick of the SLA clock; returns what it did (also used by tests and the CLI)."""
    store = queue.get_client()
    pol = policy.load()
    woken = store.wake_snoozed(now=now)
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
        "cases_woken": len(woken),
        "open_cases": len(inputs.open_cases),
        "steps_due": len(steps),
        "steps_applied": applied,
        "notifications_delivered": delivery.delivered,
        "notifications_failed": delivery.failed,
        "notifications_dead": delivery.dead,
        "notifications_deferred": delivery.deferred,
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


def feedback_run_request(queue: QueueStoreResource, cursor: str | None) -> tuple[dg.RunRequest | None, str]:
    """The run to request for new rescue work since `cursor` ("<action id>:<outbox id>"), if
    any, and the new cursor."""
    action_id, outbox_id = queue.get_client().feedback_watermark()
    seen_action, seen_outbox = (int(part) for part in (cursor or "0:0").split(":"))
    new_cursor = f"{max(action_id, seen_action)}:{max(outbox_id, seen_outbox)}"
    if action_id <= seen_action and outbox_id <= seen_outbox:
        return None, new_cursor
    return dg.RunRequest(run_key=f"feedback:{new_cursor}"), new_cursor


@dg.sensor(
    name="rescue_actions_sensor",
    job=feedback_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="New rescue plays or CRM writes: deliver them and refresh outcomes and play effectiveness.",
)
def rescue_actions_sensor(context: dg.SensorEvaluationContext, queue: QueueStoreResource) -> dg.SensorResult:
    request, cursor = feedback_run_request(queue, context.cursor)
    if request is None:
        return dg.SensorResult(skip_reason=f"no new rescue actions or CRM writes (cursor {cursor})", cursor=cursor)
    action_id, outbox_id = (int(part) for part in cursor.split(":"))
    # the external asset the feedback job reads (`assets.feedback.rescue_actions`): observed as changed
    seen = dg.AssetObservation("rescue_actions", metadata={"latest_action_id": action_id,
                                                           "latest_crm_outbox_id": outbox_id})
    return dg.SensorResult(run_requests=[request], cursor=cursor, asset_events=[seen])


all_sensors = [sla_clock, rescue_actions_sensor]
