"""``python -m initlab`` is the ``initlab`` command."""

from initlab.app import main

if __name__ == "__main__":
    main()
