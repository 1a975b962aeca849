"""vnpol: structured facts (who holds what, where, when) from Vietnamese political news."""
from .corpus import Document, Entity, Relation, Role

__version__ = "0.1.0"
__all__ = ["Document", "Entity", "Relation", "Role", "__version__"]
