"""Where ../shared (seeds, reference, fixtures, CRDs) sits: beside the repository, in CI too."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DIR = REPO_ROOT.parent / "shared"


def seed(number: str) -> Path:
    return next((SHARED_DIR / "seeds").glob(f"{number}_*.txt"))
