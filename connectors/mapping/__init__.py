"""Bring your own data: a YAML source mapping from a company's own tables to the canonical
contracts, checked and landed inside the warehouse.

- `schema`: the pydantic models of a mapping file;
- `loader`: reading a file (size cap, ``yaml.safe_load``), validation with key paths, its hash;
- `dialect`: the SQL that differs between warehouses (DuckDB reads the files);
- `compile`: the SQL that turns the sources into typed rows and the canonical tables;
- `check`: profiling and the problems found before loading;
- `land`: staging tables promoted in one transaction, with a manifest row;
- `manifest`: the `rescue_data_meta` table (what was landed, from which mapping);
- `draft`: a commented first mapping drafted from the files (`rescue data init`).

The daily path imports only `manifest` (the usage step asks whether usage was landed).
"""
