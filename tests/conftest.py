"""Suite-wide settings: no network calls from albumentations' update check."""

import os

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
