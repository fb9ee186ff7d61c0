"""Storage: SQLAlchemy tables, Alembic migrations and keyword-only queries."""

from .engine import Store, open_store
from .models import Base, Claim, Gold, ImportRecord, Item, Project, Source, User

__all__ = [
    "Base",
    "Claim",
    "Gold",
    "ImportRecord",
    "Item",
    "Project",
    "Source",
    "Store",
    "User",
    "open_store",
]
