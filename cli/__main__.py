"""``python -m diarq.cli``: the same as the ``diarq`` command."""

from diarq.cli import main

main()
