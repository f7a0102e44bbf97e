"""``python -m coatcheck.cli``: the same command as the ``coatcheck`` script."""

from coatcheck.cli import main

main()
