"""Every landing source is known in the three places that name one, and each module keeps the
contract `assets.landing` builds on."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from connectors.landing import SOURCE_MODULES
from connectors.settings import LANDING_SOURCES, Settings, SettingError, landing_sources


def test_settings_registry_and_asset_builders_name_the_same_sources():
    from assets.landing import BUILDERS

    assert tuple(SOURCE_MODULES) == tuple(LANDING_SOURCES)
    assert tuple(BUILDERS) == tuple(LANDING_SOURCES)
    assert set(LANDING_SOURCES.values()) <= {"tickets", "crm"}  # the freshness each landing is part of


@pytest.mark.parametrize("name", LANDING_SOURCES)
def test_each_source_module_binds_its_secrets_by_variable_name(name):
    module = importlib.import_module(SOURCE_MODULES[name])
    assert module.DATASET == name
    resource = module.bound_resource()
    bound = {k: v for k, v in resource.__dict__.items() if isinstance(v, dg.EnvVar)} or {
        k: v for k, v in dict(resource).items() if isinstance(v, dg.EnvVar)}
    assert bound, f"{name}: no setting bound with dg.EnvVar"
    assert module.definition_source().resources, f"{name}: the definitions see no resources"
    assert set(module.DESCRIPTIONS) <= set(module.definition_source().resources)


def test_an_unknown_source_is_refused_naming_the_variable_and_the_known_ones():
    with pytest.raises(SettingError, match="RESCUE_SOURCES.*freshdesk"):
        landing_sources(Settings(sources="freshdesk,nosuch"))


@pytest.mark.parametrize("written, expected", [
    ("acme", "https://acme.zendesk.com"), (" acme.zendesk.com/ ", "https://acme.zendesk.com"),
    ("https://support.acme.io/hc/en-us", "https://support.acme.io"), ("http://acme.zendesk.com", "https://acme.zendesk.com"),
])
def test_an_account_is_written_as_a_subdomain_a_host_or_a_url_and_always_reached_over_https(written, expected):
    from connectors.landing.pipeline import site_url

    assert site_url(written, "zendesk.com") == expected
