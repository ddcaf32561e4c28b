"""Landing: source systems' raw data into the warehouse with dlt, one dataset per source.

- `pipeline`: the warehouse URL as a dlt destination, one pipeline per source (its state kept
  by dlt in the source's dataset), a failed run as one line (`LandingError`);
- `freshdesk`: Freshdesk tickets (incremental on ``updated_at``) and companies;
- `zendesk`: Zendesk tickets with their metric sets (the incremental export, from the saved
  ``generated_timestamp``) and organizations;
- `jira`: Jira Service Management issues (incremental on ``updated``, JQL) and organizations;
- `servicenow`: ServiceNow incidents and cases (incremental on ``sys_updated_on``), assignment
  groups and customer accounts;
- `salesforce`: Salesforce Accounts and Opportunities (incremental on ``SystemModstamp``; REST, or
  Bulk API 2.0 above a row count), over the project's Salesforce client;
- `hubspot`: HubSpot companies and deals (incremental on ``hs_lastmodifieddate`` through the CRM
  search API), deals with their primary company.

`RESCUE_SOURCES` names the sources the Definitions land (`assets.landing`); each source's
default mapping to the canonical contracts is `connectors/mapping/sources/<source>.yaml`.
"""

#: The module of each source `RESCUE_SOURCES` may name (`connectors.settings.LANDING_SOURCES`
#: lists the same names without importing dlt; a test keeps the two in step).
SOURCE_MODULES = {"freshdesk": "connectors.landing.freshdesk", "zendesk": "connectors.landing.zendesk",
                  "jira": "connectors.landing.jira", "servicenow": "connectors.landing.servicenow",
                  "salesforce": "connectors.landing.salesforce", "hubspot": "connectors.landing.hubspot"}
