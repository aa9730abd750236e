"""The archive server (`bl serve`): brainlife.io's REST API on SQLite and a local content store.

Only `create_app` is public. Nothing is opened or read at import time.
"""

from brainlife.server.app import create_app

__all__ = ["create_app"]
