import sys

from vidloc.cli import main

sys.exit(main())
