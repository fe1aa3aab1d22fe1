"""``<id:name>`` in URL patterns: a row id of at most 18 digits.

Django's ``<int:...>`` takes any number of digits, and an id past the database's 64-bit
integers (``2**63``) reached the query and answered 500 ("Python int too large to convert to
SQLite INTEGER"), as did 5,000 digits (past Python's int-from-string limit). No row id has
19 digits, so such a path matches no route and is a 404 like any unknown URL. Imported by
every ``urls.py`` that uses it; registered once here.
"""

from django.urls import register_converter

__all__ = ["ID_PATTERN", "RowIdConverter"]

#: The digits of a row id, for ``re_path`` patterns.
ID_PATTERN = "[0-9]{1,18}"


class RowIdConverter:
    regex = ID_PATTERN

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


register_converter(RowIdConverter, "id")
