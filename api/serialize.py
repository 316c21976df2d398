"""Moved to shared/serialize.py (the worker builds webhook payloads with it too); kept
until api/submit.py imports it from there."""

from shared.serialize import job_to_dict

__all__ = ["job_to_dict"]
