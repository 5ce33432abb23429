"""Make the test helpers beside this file (charuco_render, session_factory) importable."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
