"""WSGI entry point for gunicorn: ``gunicorn api.wsgi:app`` (what `diarq api` runs)."""

from api import create_app

app = create_app()
