"""Imports every domain's tables so the metadata (and Alembic) sees the whole schema."""

from callcenter import models as core_models
from callcenter.db import Base
from cti import models as cti_models
from recordings import models as recording_models
from ticketing import models as ticket_models

__all__ = ["Base", "core_models", "cti_models", "recording_models", "ticket_models"]
