import sys

from magnetd.cli import main

sys.exit(main())
