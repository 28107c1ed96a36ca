import sys

from metadata.cli import main

sys.exit(main())
