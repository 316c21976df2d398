"""WSGI entry point for gunicorn: ``gunicorn diarq.api.wsgi:app`` (what `diarq api` runs)."""

from diarq.api import create_app

app = create_app()
