import sys

from vidloc.cli import main

# Guarded: decoder children (multiprocessing) may re-run the main module; they must not run main().
if __name__ == "__main__":
    sys.exit(main())
