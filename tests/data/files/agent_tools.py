def search(query: str, limit: int = 5) -> list[str]:
    """Search the notes."""
    return [query] * limit


def spread(*terms: str) -> str:
    """Join terms."""
    return " ".join(terms)
