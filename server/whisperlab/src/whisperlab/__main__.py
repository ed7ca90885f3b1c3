import sys

from whisperlab.cli import main

sys.exit(main())
