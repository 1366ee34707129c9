"""``python -m simsip.cli ...`` is ``simsip ...``."""

from simsip.cli import main

if __name__ == "__main__":
    main()
