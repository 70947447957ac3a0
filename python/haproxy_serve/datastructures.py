"""URL, headers and query parameters, shaped like `starlette.datastructures`."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode


class URL:
    """The parts of a request URL that handlers read."""

    def __init__(self, path: str, query: str = "", scheme: str = "http", netloc: str = "") -> None:
        self.path = path
        self.query = query
        self.scheme = scheme
        self.netloc = netloc

    @property
    def hostname(self) -> str | None:
        return self.netloc.rsplit(":", 1)[0] if self.netloc else None

    def __str__(self) -> str:
        url = f"{self.scheme}://{self.netloc}{self.path}"
        return f"{url}?{self.query}" if self.query else url

    def __repr__(self) -> str:
        return f"URL({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)


class ImmutableMultiDict(Mapping[str, str]):
    """A mapping that keeps every value of a repeated key; plain lookups see the last one."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._list = [(str(k), str(v)) for k, v in pairs]
        self._dict = dict(self._list)

    def getlist(self, key: str) -> list[str]:
        return [v for k, v in self._list if k == key]

    def multi_items(self) -> list[tuple[str, str]]:
        return list(self._list)

    def __getitem__(self, key: str) -> str:
        return self._dict[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._dict)

    def __len__(self) -> int:
        return len(self._dict)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class QueryParams(ImmutableMultiDict):
    """Query-string parameters: `QueryParams("a=1&b=2&a=3")`."""

    def __init__(self, query: str | Iterable[tuple[str, str]] = "") -> None:
        pairs = parse_qsl(query, keep_blank_values=True) if isinstance(query, str) else query
        super().__init__(pairs)

    def __str__(self) -> str:
        return urlencode(self._list)


class Headers(Mapping[str, str]):
    """Case-insensitive HTTP headers; a repeated name keeps every value, lookups see the first."""

    def __init__(
        self, headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None
    ) -> None:
        pairs = headers.items() if isinstance(headers, Mapping) else (headers or ())
        self._list = [(str(k).lower(), str(v)) for k, v in pairs]

    @property
    def raw(self) -> list[tuple[bytes, bytes]]:
        return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self._list]

    def getlist(self, key: str) -> list[str]:
        key = key.lower()
        return [v for k, v in self._list if k == key]

    def keys(self) -> list[str]:  # type: ignore[override]
        return [k for k, _ in self._list]

    def values(self) -> list[str]:  # type: ignore[override]
        return [v for _, v in self._list]

    def items(self) -> list[tuple[str, str]]:  # type: ignore[override]
        return list(self._list)

    def __getitem__(self, key: str) -> str:
        key = key.lower()
        for k, v in self._list:
            if k == key:
                return v
        raise KeyError(key)

    def __contains__(self, key: Any) -> bool:
        return isinstance(key, str) and key.lower() in self.keys()

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self._list)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._list!r})"


class MutableHeaders(Headers):
    """Headers a response can still change."""

    def __setitem__(self, key: str, value: str) -> None:
        """Replaces every value of `key` with this one."""
        del self[key]
        self._list.append((key.lower(), str(value)))

    def __delitem__(self, key: str) -> None:
        key = key.lower()
        self._list = [(k, v) for k, v in self._list if k != key]

    def append(self, key: str, value: str) -> None:
        self._list.append((key.lower(), str(value)))

    def setdefault(self, key: str, value: str) -> str:  # type: ignore[override]
        if key not in self:
            self.append(key, value)
        return self[key]
