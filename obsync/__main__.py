import sys

from obsync.cli import main

sys.exit(main())
