import sys

from whisper_server.cli import main

sys.exit(main())
