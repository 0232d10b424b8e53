import sys

from kokoro_nb.cli import main

sys.exit(main())
