"""The settings module: every RESCUE_* variable declared once, read from one environ snapshot."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dagster as dg
import pytest

from connectors import settings
from connectors.settings import (
    SalesforceSettings,
    SettingError,
    Settings,
    current,
    declared_names,
    landing_sources,
    secret_names,
)
from pipelines.resources import build_resources


def test_unset_variables_give_the_embedded_defaults():
    s = current({})
    assert s.home == ".rescue"
    assert (s.warehouse_url, s.queue_url, s.model_dir, s.policy_path, s.desk_secret) == (None,) * 5
    assert s.salesforce == SalesforceSettings() and not s.salesforce.configured
    assert s.salesforce.domain == "login"


def test_each_field_reads_its_declared_variable_and_empty_counts_as_unset():
    environ = {name: f"value of {name}" for name in declared_names()}
    environ["RESCUE_MODEL_DIR"] = ""
    s = current(environ)
    assert s.queue_url == "value of RESCUE_QUEUE_URL"
    assert s.model_dir is None
    assert s.salesforce.password == "value of RESCUE_SF_PASSWORD" and s.salesforce.configured
    assert Settings.env("queue_url") == "RESCUE_QUEUE_URL"
    assert SalesforceSettings.env("security_token") == "RESCUE_SF_SECURITY_TOKEN"


def test_names_are_declared_once_and_secrets_stay_out_of_the_repr():
    names = declared_names()
    # the project's own variables are RESCUE_*; a landing source's account keeps its vendor's name
    vendor = {f.metadata["env"] for source in settings.LANDING_SOURCES
              for f in dataclasses.fields(getattr(Settings(), source))} | {"HUBSPOT_ACCESS_TOKEN"}
    assert {"FRESHDESK_API_KEY", "ZENDESK_API_TOKEN"} <= vendor
    assert len(names) == len(set(names)) and all(n.startswith("RESCUE_") for n in set(names) - vendor)
    assert {"RESCUE_SF_PASSWORD", "RESCUE_SMTP_PASSWORD", "RESCUE_DESK_SECRET",
            "RESCUE_SLACK_WEBHOOK_URL", "RESCUE_QUEUE_URL"} <= set(secret_names())
    s = current({name: f"placeholder-{i}" for i, name in enumerate(names)})
    shown = repr(s)
    for i, name in enumerate(names):
        assert (f"'placeholder-{i}'" in shown) == (name not in secret_names()), name


def test_landing_sources_are_read_once_each_and_an_unknown_one_names_the_variable():
    assert landing_sources(current({})) == ()
    assert landing_sources(current({"RESCUE_SOURCES": " Freshdesk, freshdesk ,"})) == ("freshdesk",)
    assert landing_sources(current({"RESCUE_SOURCES": "hubspot,Salesforce"})) == ("hubspot", "salesforce")
    with pytest.raises(SettingError, match=r"^RESCUE_SOURCES='pipedrive': unknown source 'pipedrive'; "
                                           r"expected .*freshdesk, zendesk, jira, servicenow, salesforce, hubspot$"):
        landing_sources(current({"RESCUE_SOURCES": "pipedrive"}))


def test_path_defaults_follow_the_home(tmp_path, monkeypatch):
    monkeypatch.setenv("RESCUE_HOME", str(tmp_path / "home"))
    for name in ("RESCUE_WAREHOUSE_URL", "RESCUE_QUEUE_URL", "RESCUE_MODEL_DIR", "RESCUE_REPORT_DIR",
                 "RESCUE_POLICY_PATH"):
        monkeypatch.delenv(name, raising=False)
    assert settings.default_queue_url() == f"sqlite:///{tmp_path / 'home' / 'queue.db'}"
    assert settings.default_model_dir() == tmp_path / "home" / "models"
    assert settings.default_report_dir().is_dir()
    assert settings.default_policy_path() == Path("policies") / "default.yaml"
    monkeypatch.setenv("RESCUE_REPORT_DIR", str(tmp_path / "reports"))
    assert settings.default_report_dir() == tmp_path / "reports"


def test_resources_bind_secrets_by_their_declared_names(monkeypatch):
    for name in declared_names():
        monkeypatch.delenv(name, raising=False)
    plain = build_resources()
    assert plain["crm_writer"].target == "warehouse" and plain["crm_writer"].salesforce is None
    monkeypatch.setenv("RESCUE_SF_USERNAME", "integration@example.com")
    monkeypatch.setenv("RESCUE_SF_PASSWORD", "placeholder-password")
    monkeypatch.setenv("RESCUE_QUEUE_URL", "sqlite:///placeholder.db")
    monkeypatch.setenv("RESCUE_MODEL_DIR", "/srv/models")
    resources = build_resources()
    writer = resources["crm_writer"]
    assert writer.target == "salesforce" and writer.salesforce.username == "integration@example.com"
    assert writer.salesforce.password == dg.EnvVar("RESCUE_SF_PASSWORD")
    assert resources["queue"].url == dg.EnvVar("RESCUE_QUEUE_URL")
    assert resources["model_registry"].path == "/srv/models"
