"""Every `RESCUE_*` setting, declared once, and where the embedded defaults live on disk.

Everything the embedded demo writes (warehouse, rescue queue, model registry, reports, the
Dagster instance) lives under one project-local home, `RESCUE_HOME` (default `./.rescue`), which
is git-ignored. Production deployments point the URLs at real systems with environment
variables instead; the README's configuration table lists them all (a test keeps the table and
this module in step).

`Settings` is a frozen snapshot of the environment: each field declares its variable (and
whether it holds a secret) and nothing else in the project reads a `RESCUE_*` variable.
`current()` takes a fresh snapshot, so a process that changes its environment (a test, a CLI
option) is seen at the next call. A field's variable name is `Settings.env("field")` (or
`SalesforceSettings.env("field")`): resources that bind a secret pass that name to
`dg.EnvVar`, so the value never reaches the Dagster UI, logs or metadata. Secret fields are
left out of the repr. An empty variable counts as unset.

These settings are read through a parser that names the variable when its value is unusable
(`SettingError`): `snapshot_start_date()` (`RESCUE_SNAPSHOT_START`, the first snapshot
partition, `assets.partitions`), `pinned_clock()` (`RESCUE_NOW`, the deployment's clock,
`assets.run_clock`), `freshness_mode()` (`RESCUE_FRESHNESS`, what a stale source does,
`assets.quality`), `executor_choice()` (`RESCUE_EXECUTOR` and `RESCUE_MAX_CONCURRENCY`, how a
run executes its steps, `pipelines.executors`), `usage_lookback_days()`
(`RESCUE_USAGE_LOOKBACK_DAYS`, the usage build's lookback, `assets.sources`),
`landing_sources()` (`RESCUE_SOURCES`, the systems landed with dlt, `connectors.landing`),
`salesforce_bulk_threshold()` (`RESCUE_SF_BULK_THRESHOLD`, when a Salesforce pull is a Bulk API
2.0 job, `connectors.landing.salesforce`),
`crm_target()` (`RESCUE_CRM`, where the CRM write-back goes) and `ticket_writeback_target()`
(`RESCUE_TICKET_WRITEBACK`, the ticketing system that gets notes, `connectors.ticket_notes`).

Slack webhooks per team are not settings of their own: a policy names the variable that holds
each team's webhook (`slack_webhook_env`, e.g. `RESCUE_SLACK_CSM`), and the notifier reads the
variable the policy names (`POLICY_SLACK_VARIABLES` is that pattern, for the documentation).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

#: The embedded escalation policy, relative to the repository root.
DEFAULT_POLICY = Path("policies") / "default.yaml"

#: Variables a policy may name for a team's Slack webhook (not declared here: the policy names them).
POLICY_SLACK_VARIABLES = "RESCUE_SLACK_<TEAM>"


def _var(name: str, default: Any = None, *, secret: bool = False, doc: str) -> Any:
    """A field read from the environment variable `name` (`secret`: kept out of the repr)."""
    return field(default=default, repr=not secret, metadata={"env": name, "secret": secret, "doc": doc})


class _FromEnv:
    """What the settings groups share: built from an environ, and each field's variable name."""

    @classmethod
    def env(cls, name: str) -> str:
        """The environment variable of field `name`."""
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.name == name and "env" in f.metadata:
                return f.metadata["env"]
        raise KeyError(f"{cls.__name__} has no setting {name!r}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Any:
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if "env" in f.metadata:
                raw = environ.get(f.metadata["env"])
                if raw:
                    values[f.name] = raw
            elif isinstance(f.default_factory, type) and issubclass(f.default_factory, _FromEnv):
                values[f.name] = f.default_factory.from_env(environ)
        return cls(**values)


@dataclass(frozen=True)
class SalesforceSettings(_FromEnv):
    """Salesforce, for the CRM write-back: username + password + security token, or an existing
    session id + instance URL. Unset (no username, no instance URL): the embedded demo CRM."""

    username: str = _var("RESCUE_SF_USERNAME", "", doc="Integration user's username")
    password: str = _var("RESCUE_SF_PASSWORD", "", secret=True, doc="Integration user's password")
    security_token: str = _var("RESCUE_SF_SECURITY_TOKEN", "", secret=True, doc="Integration user's security token")
    instance_url: str = _var("RESCUE_SF_INSTANCE_URL", "", doc="Instance URL, with a session id instead of a password")
    session_id: str = _var("RESCUE_SF_SESSION_ID", "", secret=True, doc="Existing session / OAuth access token")
    domain: str = _var("RESCUE_SF_DOMAIN", "login", doc="'login', 'test' (sandbox) or a My Domain prefix")
    bulk_threshold: str = _var(
        "RESCUE_SF_BULK_THRESHOLD", "10000", doc="Rows above which a Salesforce pull is a Bulk API 2.0 query job")
    account_fields: str = _var(
        "RESCUE_SF_ACCOUNT_FIELDS", "", doc="Account fields landed besides the standard ones, comma-separated (e.g. ARR__c)")
    opportunity_fields: str = _var(
        "RESCUE_SF_OPPORTUNITY_FIELDS", "", doc="Opportunity fields landed besides the standard ones, comma-separated")
    opportunity_filter: str = _var(
        "RESCUE_SF_OPPORTUNITY_FILTER", "", doc="SOQL condition on the Opportunities landed; unset: all of them")

    @property
    def configured(self) -> bool:
        """Whether the write-back goes to Salesforce (a username or an instance URL is set)."""
        return bool(self.username or self.instance_url)


@dataclass(frozen=True)
class FreshdeskSettings(_FromEnv):
    """Freshdesk, a landing source (`connectors.landing.freshdesk`) when `RESCUE_SOURCES` names it."""

    domain: str = _var("FRESHDESK_DOMAIN", "", doc="Freshdesk account: 'acme' or 'acme.freshdesk.com'")
    api_key: str = _var("FRESHDESK_API_KEY", "", secret=True, doc="API key of a Freshdesk agent who may read tickets and companies")


@dataclass(frozen=True)
class ZendeskSettings(_FromEnv):
    """Zendesk, a landing source (`connectors.landing.zendesk`) when `RESCUE_SOURCES` names it."""

    subdomain: str = _var("ZENDESK_SUBDOMAIN", "", doc="Zendesk account: 'acme', 'acme.zendesk.com' or its full URL")
    email: str = _var("ZENDESK_EMAIL", "", doc="E-mail of the Zendesk agent whose API token is used")
    api_token: str = _var("ZENDESK_API_TOKEN", "", secret=True, doc="Zendesk API token (basic auth as {email}/token)")


@dataclass(frozen=True)
class HubSpotSettings(_FromEnv):
    """HubSpot: a landing source (`connectors.landing.hubspot`) when `RESCUE_SOURCES` names it, and
    the CRM write-back target with `RESCUE_CRM=hubspot` (`connectors.hubspot_writer`)."""

    access_token: str = _var("HUBSPOT_ACCESS_TOKEN", "", secret=True,
                             doc="Private app access token: crm.objects.companies.read and deals.read to land; "
                                 "companies and tasks write for the write-back")
    company_properties: str = _var(
        "RESCUE_HUBSPOT_COMPANY_PROPERTIES", "", doc="Company properties landed besides the standard ones, comma-separated")
    deal_properties: str = _var(
        "RESCUE_HUBSPOT_DEAL_PROPERTIES", "", doc="Deal properties landed besides the standard ones, comma-separated")


@dataclass(frozen=True)
class HubSpotWritebackSettings(_FromEnv):
    """Where the HubSpot write-back puts things (`connectors.hubspot_writer`): the unique task
    property that keys a rescue task, the company property that holds the account id, and the
    company properties of the health fields."""

    task_key: str = _var("RESCUE_HUBSPOT_TASK_KEY", "rescue_key",
                         doc="Unique-value task property holding a task's external id")
    company_key: str = _var("RESCUE_HUBSPOT_COMPANY_KEY", "hs_object_id",
                            doc="Company property the account id is ('hs_object_id': the company id)")
    health_score: str = _var("RESCUE_HUBSPOT_HEALTH_SCORE_PROPERTY", "rescue_health_score",
                             doc="Company property of the health score")
    churn_risk: str = _var("RESCUE_HUBSPOT_CHURN_RISK_PROPERTY", "rescue_churn_risk",
                           doc="Company property of the churn risk")
    rescue_status: str = _var("RESCUE_HUBSPOT_RESCUE_STATUS_PROPERTY", "rescue_status",
                              doc="Company property of the rescue status")
    top_reason: str = _var("RESCUE_HUBSPOT_TOP_REASON_PROPERTY", "rescue_top_reason",
                           doc="Company property of the top reason")


@dataclass(frozen=True)
class JiraSettings(_FromEnv):
    """Jira Service Management Cloud, a landing source (`connectors.landing.jira`) when
    `RESCUE_SOURCES` names it. The custom field ids differ per site (``GET /rest/api/3/field``
    lists them); the defaults are common ones."""

    base_url: str = _var("JIRA_BASE_URL", "", doc="Jira site: 'https://acme.atlassian.net' (or 'acme')")
    email: str = _var("JIRA_EMAIL", "", doc="E-mail of the Atlassian account whose API token is used")
    api_token: str = _var("JIRA_API_TOKEN", "", secret=True, doc="API token of that account (basic auth with the e-mail)")
    projects: str = _var("JIRA_PROJECTS", "", doc="Project keys, comma-separated; unset: every service-desk project")
    organization_field: str = _var("JIRA_ORGANIZATION_FIELD", "customfield_10002", doc="Id of the Organizations field")
    request_type_field: str = _var("JIRA_REQUEST_TYPE_FIELD", "customfield_10010", doc="Id of the Request Type field")
    first_response_field: str = _var("JIRA_FIRST_RESPONSE_FIELD", "customfield_10031",
                                     doc="Id of the 'Time to first response' SLA field")
    resolution_field: str = _var("JIRA_RESOLUTION_FIELD", "customfield_10030", doc="Id of the 'Time to resolution' SLA field")
    timezone: str = _var("JIRA_TIMEZONE", "UTC", doc="Time zone of the API account's Jira profile (JQL dates are read in it)")


@dataclass(frozen=True)
class ServiceNowSettings(_FromEnv):
    """ServiceNow, a landing source (`connectors.landing.servicenow`) when `RESCUE_SOURCES` names
    it: basic auth (user + password) or an OAuth access token."""

    instance: str = _var("SERVICENOW_INSTANCE", "", doc="ServiceNow instance: 'acme' or 'acme.service-now.com'")
    user: str = _var("SERVICENOW_USER", "", doc="Integration user (basic auth, with SERVICENOW_PASSWORD)")
    password: str = _var("SERVICENOW_PASSWORD", "", secret=True, doc="Integration user's password")
    token: str = _var("SERVICENOW_TOKEN", "", secret=True, doc="OAuth access token (bearer), instead of user and password")


@dataclass(frozen=True)
class Settings(_FromEnv):
    """The project's settings; None (or the default shown) when the variable is unset."""

    home: str = _var("RESCUE_HOME", ".rescue", doc="Directory of all embedded state")
    warehouse_url: str | None = _var(
        "RESCUE_WAREHOUSE_URL", secret=True, doc="SQLAlchemy URL of the warehouse (may hold a password)")
    queue_url: str | None = _var(
        "RESCUE_QUEUE_URL", secret=True, doc="SQLAlchemy URL of the rescue queue (may hold a password)")
    model_dir: str | None = _var("RESCUE_MODEL_DIR", doc="Model registry directory")
    report_dir: str | None = _var("RESCUE_REPORT_DIR", doc="Directory of model and policy reports")
    policy_path: str | None = _var("RESCUE_POLICY_PATH", doc="Escalation policy YAML")
    slack_webhook_url: str | None = _var(
        "RESCUE_SLACK_WEBHOOK_URL", secret=True, doc="Slack incoming webhook for destinations without their own")
    smtp_host: str | None = _var("RESCUE_SMTP_HOST", doc="SMTP server for e-mail notifications")
    smtp_user: str | None = _var("RESCUE_SMTP_USER", doc="SMTP login")
    smtp_password: str | None = _var("RESCUE_SMTP_PASSWORD", secret=True, doc="SMTP password")
    desk_secret: str | None = _var("RESCUE_DESK_SECRET", secret=True, doc="Key signing desk session cookies")
    actor: str | None = _var("RESCUE_ACTOR", doc="Who is acting in `rescue queue` commands")
    snapshot_start: str | None = _var(
        "RESCUE_SNAPSHOT_START", doc="First snapshot partition (ISO date); unset: from the landed data")
    now: str | None = _var(
        "RESCUE_NOW", doc="The deployment's clock (ISO instant) for replays and backfills; unset: the wall clock")
    freshness: str = _var(
        "RESCUE_FRESHNESS", "block", doc="A stale source blocks routing ('block') or is a warning ('warn')")
    executor: str = _var(
        "RESCUE_EXECUTOR", "in_process",
        doc="How a run executes its steps: 'in_process', 'multiprocess', 'k8s' (a pod per step) or 'celery'")
    max_concurrency: str | None = _var(
        "RESCUE_MAX_CONCURRENCY", doc="Steps a multiprocess run executes at once; unset: one per CPU core")
    usage_lookback: str | None = _var(
        "RESCUE_USAGE_LOOKBACK_DAYS", doc="Days before the last aggregated usage day each build aggregates again")
    sources: str | None = _var(
        "RESCUE_SOURCES", doc="Systems landed with dlt into the warehouse, comma-separated (freshdesk, zendesk, jira, servicenow, salesforce, hubspot); unset: none")
    mapping: str | None = _var(
        "RESCUE_MAPPING", doc="The company's mapping file, under the landed systems' default mappings (landing_job)")
    crm: str | None = _var(
        "RESCUE_CRM", doc="CRM write-back target: 'warehouse', 'salesforce' or 'hubspot'; unset: Salesforce when "
                          "configured, else the demo CRM")
    ticket_writeback: str | None = _var(
        "RESCUE_TICKET_WRITEBACK", doc="Notes on the account's open ticket: 'freshdesk', 'jira' or 'servicenow'; "
                                       "unset: none")
    servicenow_note_table: str = _var(
        "RESCUE_SERVICENOW_NOTE_TABLE", "incident", doc="ServiceNow table of the tickets that get work notes")
    salesforce: SalesforceSettings = field(default_factory=SalesforceSettings)
    freshdesk: FreshdeskSettings = field(default_factory=FreshdeskSettings)
    zendesk: ZendeskSettings = field(default_factory=ZendeskSettings)
    hubspot: HubSpotSettings = field(default_factory=HubSpotSettings)
    hubspot_writeback: HubSpotWritebackSettings = field(default_factory=HubSpotWritebackSettings)
    jira: JiraSettings = field(default_factory=JiraSettings)
    servicenow: ServiceNowSettings = field(default_factory=ServiceNowSettings)


#: The sources `RESCUE_SOURCES` may name (`connectors.landing`), each with the source whose
#: freshness its landing is part of (`connectors.freshness.landing_ages`: "tickets" or "crm").
LANDING_SOURCES = {"freshdesk": "tickets", "zendesk": "tickets", "jira": "tickets", "servicenow": "tickets",
                   "salesforce": "crm", "hubspot": "crm"}
#: The values of `RESCUE_CRM` (`pipelines.resources.crm_writer_resource`).
CRM_TARGETS = ("warehouse", "salesforce", "hubspot")
#: The values of `RESCUE_TICKET_WRITEBACK` (`connectors.ticket_notes`).
TICKET_WRITEBACK_TARGETS = ("freshdesk", "jira", "servicenow")
#: The values of `RESCUE_FRESHNESS`.
FRESHNESS_MODES = ("block", "warn")
#: The values of `RESCUE_EXECUTOR` (`pipelines.executors` turns one into a Dagster executor).
EXECUTORS = ("in_process", "multiprocess", "k8s", "celery")
#: `RESCUE_USAGE_LOOKBACK_DAYS` unset, and its largest value: past a quarter, late events are
#: better met by the full build (`connectors.usage`).
DEFAULT_USAGE_LOOKBACK_DAYS = 3
MAX_USAGE_LOOKBACK_DAYS = 92


class SettingError(ValueError):
    """A variable holds a value its setting cannot use; the message names the variable."""


def snapshot_start_date(settings: Settings | None = None) -> date | None:
    """`RESCUE_SNAPSHOT_START` as a date (None when unset). Raises `SettingError` for a value
    that is not an ISO date."""
    text = (settings or current()).snapshot_start
    if not text:
        return None
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise SettingError(f"{Settings.env('snapshot_start')}={text!r} is not a date: give it as YYYY-MM-DD") from None


def pinned_clock(settings: Settings | None = None) -> datetime | None:
    """`RESCUE_NOW` as a naive UTC datetime (None when unset; a value without a time zone is
    UTC). Raises `SettingError` for a value that is not an ISO 8601 instant."""
    text = (settings or current()).now
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise SettingError(f"{Settings.env('now')}={text!r} is not an ISO 8601 instant "
                           "(e.g. 2024-06-03T06:00:00+00:00)") from None
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def freshness_mode(settings: Settings | None = None) -> str:
    """`RESCUE_FRESHNESS`: 'block' (the default) or 'warn'. Raises `SettingError` otherwise."""
    mode = ((settings or current()).freshness or "block").strip().lower()
    if mode not in FRESHNESS_MODES:
        raise SettingError(f"{Settings.env('freshness')}={mode!r} is not one of {', '.join(FRESHNESS_MODES)}")
    return mode


def executor_choice(settings: Settings | None = None) -> tuple[str, int | None]:
    """(`RESCUE_EXECUTOR`, `RESCUE_MAX_CONCURRENCY`): the executor's name, one of `EXECUTORS`
    ('in-process' and 'multi-process' are read alike), and the most steps a run executes at once
    (None when unset: one per CPU core). Raises `SettingError` for any other executor, or a
    concurrency that is not a positive whole number."""
    s = settings or current()
    name = (s.executor or "in_process").strip().lower().replace("-", "_")
    if name == "multi_process":
        name = "multiprocess"
    if name not in EXECUTORS:
        raise SettingError(f"{Settings.env('executor')}={s.executor!r} is not one of {', '.join(EXECUTORS)}")
    text = (s.max_concurrency or "").strip()
    if not text:
        return name, None
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit < 1:
        raise SettingError(f"{Settings.env('max_concurrency')}={s.max_concurrency!r} is not a positive whole number "
                           "(the most steps a multiprocess run executes at once)")
    return name, limit


def usage_lookback_days(settings: Settings | None = None) -> int:
    """`RESCUE_USAGE_LOOKBACK_DAYS` as whole days (`DEFAULT_USAGE_LOOKBACK_DAYS` when unset).
    Raises `SettingError` for anything but a whole number from 0 to `MAX_USAGE_LOOKBACK_DAYS`."""
    text = (settings or current()).usage_lookback
    if not text:
        return DEFAULT_USAGE_LOOKBACK_DAYS
    value = text.strip()
    if not value.isdigit() or int(value) > MAX_USAGE_LOOKBACK_DAYS:
        raise SettingError(f"{Settings.env('usage_lookback')}={text!r} is not a whole number of days from 0 to "
                           f"{MAX_USAGE_LOOKBACK_DAYS}")
    return int(value)


def landing_sources(settings: Settings | None = None) -> tuple[str, ...]:
    """`RESCUE_SOURCES` as source names (`LANDING_SOURCES`), in the order given, each once; empty
    when unset. Raises `SettingError` for a name it does not know."""
    text = (settings or current()).sources or ""
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in LANDING_SOURCES]
    if unknown:
        raise SettingError(f"{Settings.env('sources')}={text!r}: unknown source {unknown[0]!r}; "
                           f"expected a comma-separated list of {', '.join(LANDING_SOURCES)}")
    return tuple(dict.fromkeys(names))


def crm_target(settings: Settings | None = None) -> str:
    """`RESCUE_CRM`, one of `CRM_TARGETS`; unset: 'salesforce' when Salesforce is configured,
    else 'warehouse' (the demo CRM). Raises `SettingError` for any other value."""
    s = settings or current()
    if not s.crm:
        return "salesforce" if s.salesforce.configured else "warehouse"
    name = s.crm.strip().lower()
    if name not in CRM_TARGETS:
        raise SettingError(f"{Settings.env('crm')}={s.crm!r} is not one of {', '.join(CRM_TARGETS)}")
    return name


def ticket_writeback_target(settings: Settings | None = None) -> str | None:
    """`RESCUE_TICKET_WRITEBACK`, one of `TICKET_WRITEBACK_TARGETS`; None when unset. Raises
    `SettingError` for any other value."""
    text = (settings or current()).ticket_writeback
    if not text:
        return None
    name = text.strip().lower()
    if name not in TICKET_WRITEBACK_TARGETS:
        raise SettingError(f"{Settings.env('ticket_writeback')}={text!r} is not one of "
                           f"{', '.join(TICKET_WRITEBACK_TARGETS)}")
    return name


def salesforce_bulk_threshold(settings: SalesforceSettings | None = None) -> int:
    """`RESCUE_SF_BULK_THRESHOLD` as a row count (10,000 when unset). Raises `SettingError` for
    anything but a whole number."""
    text = ((settings or current().salesforce).bulk_threshold or "10000").strip().replace(",", "").replace("_", "")
    if not text.isdigit():
        raise SettingError(f"{SalesforceSettings.env('bulk_threshold')}={text!r} is not a whole number of rows")
    return int(text)


def current(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings in `environ` (default: this process's environment, read now)."""
    return Settings.from_env(environ)


def _declared(cls: type) -> Iterator[dataclasses.Field]:
    for f in dataclasses.fields(cls):
        if "env" in f.metadata:
            yield f
        elif isinstance(f.default_factory, type) and issubclass(f.default_factory, _FromEnv):
            yield from _declared(f.default_factory)


def declared_names() -> tuple[str, ...]:
    """Every environment variable the settings read, in declaration order."""
    return tuple(f.metadata["env"] for f in _declared(Settings))


def secret_names() -> tuple[str, ...]:
    """The variables that hold secrets (bound with `dg.EnvVar`, never shown)."""
    return tuple(f.metadata["env"] for f in _declared(Settings) if f.metadata["secret"])


def project_home() -> Path:
    """The project-local home directory, created on first use."""
    home = Path(current().home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    return home


def default_warehouse_url() -> str:
    return current().warehouse_url or f"duckdb:///{project_home() / 'warehouse.duckdb'}"


def default_queue_url() -> str:
    return current().queue_url or f"sqlite:///{project_home() / 'queue.db'}"


def default_model_dir() -> Path:
    path = Path(current().model_dir or project_home() / "models")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_report_dir() -> Path:
    path = Path(current().report_dir or project_home() / "reports")
    path.mkdir(parents=True, exist_ok=True)
    return path


def default_policy_path() -> Path:
    """The escalation policy: `RESCUE_POLICY_PATH`, else the embedded default."""
    return Path(current().policy_path or DEFAULT_POLICY)
