from textkit import is_palindrome, slugify, title_case, truncate, word_count


def test_word_count():
    assert word_count("one two  three") == 3
    assert word_count("") == 0


def test_slugify():
    assert slugify("Hello  World") == "hello-world"


def test_title_case():
    assert title_case("small language models") == "Small Language Models"


def test_truncate_keeps_short_text():
    assert truncate("short", 10) == "short"


def test_truncate_cuts_long_text():
    assert truncate("a long sentence here", 10) == "a long ..."


def test_is_palindrome():
    assert is_palindrome("Never odd or even")
    assert not is_palindrome("wren")
