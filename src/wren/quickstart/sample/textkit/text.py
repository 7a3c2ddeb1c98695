def word_count(text):
    """The number of words in text, split on whitespace."""
    return len(text.split())


def slugify(text):
    """Lower-case words of text joined by single hyphens."""
    words = [w for w in text.lower().split() if w]
    return "-".join(words)


def title_case(text):
    """Each word of text with its first letter upper-case."""
    return " ".join(word[:1].upper() + word[1:] for word in text.split(" "))


def truncate(text, width):
    """text cut to at most width characters, ending in '...' when it was cut."""
    if len(text) <= width:
        return text
    return text[: width - 3] + "..."


def is_palindrome(text):
    """Whether text reads the same backwards, ignoring case and spaces."""
    letters = [c.lower() for c in text if c != " "]
    return letters == letters[::-1]
