import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import abvm  # noqa: E402


@pytest.fixture
def machine(tmp_path):
    return abvm.Machine(tmp_path)
