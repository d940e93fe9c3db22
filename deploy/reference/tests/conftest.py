import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
pytest_plugins = ["stack"]  # the live-stack fixtures; other suites load them the same way
