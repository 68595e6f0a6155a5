"""Query parts, their combination, filters, execution and zero-shot classification."""

from bindsearch.query.filters import Filters
from bindsearch.query.parts import PART_KINDS, File, Item, QueryPart, Text, Vector, combine

__all__ = ["PART_KINDS", "File", "Filters", "Item", "QueryPart", "Text", "Vector", "combine"]
