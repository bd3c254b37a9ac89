import sys

from vidloc.cli import main

# Guarded: frame sources start child processes with the spawn method, which re-imports this.
if __name__ == "__main__":
    sys.exit(main())
