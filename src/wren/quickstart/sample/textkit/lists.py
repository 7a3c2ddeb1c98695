def chunk(items, size):
    """items in consecutive lists of size elements (the last may be shorter)."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i : i + size] for i in range(0, len(items), size)]


def dedupe(items):
    """items without repeats, in the order of first appearance."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def mean(values):
    """The arithmetic mean of values; 0.0 for no values."""
    if not values:
        return 0.0
    return sum(values) / len(values)
