import sys

from obsync.app.cli import main

sys.exit(main())
