"""``python -m veritag`` is the same as the ``veritag`` command."""

from .cli import main

main()
