"""The veritag server: a JSON API (and, later, a web UI) over one store. See ``app.create_app``."""

from .app import create_app

__all__ = ["create_app"]
