"""Small text and list helpers: the sample project that `wren quickstart` makes tasks from."""

from textkit.lists import chunk, dedupe, mean
from textkit.text import is_palindrome, slugify, title_case, truncate, word_count

__all__ = ["chunk", "dedupe", "is_palindrome", "mean", "slugify", "title_case", "truncate", "word_count"]
