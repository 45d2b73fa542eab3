"""Serving: the HTTP service (``tagrank serve``) over one loaded Tagger, with request batching."""

from tagrank.serve.app import ServeSettings, create_app

__all__ = ["ServeSettings", "create_app"]
