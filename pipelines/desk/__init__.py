"""The rescue desk: web pages and a JSON API where the rescue team works its queue.

`create_app(queue_url, policy_path)` builds the ASGI app; `rescue desk serve` runs it with
uvicorn. See `pipelines.desk.app` for the routes and `pipelines.desk.auth` for access control.
"""

from pipelines.desk.app import create_app

__all__ = ["create_app"]
