"""Pure helpers of the source mapping (`connectors.mapping`): the fields each section maps,
SQL text rules, date formats, problem reports and the inference behind `rescue data init`."""
