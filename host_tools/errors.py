"""One error type for everything a person wrote wrongly in a file or on a command line."""

from __future__ import annotations


class InputError(Exception):
    """A value in an input file or command was refused. Nothing was changed or sent.

    key: where the value was (a dotted path like `basal.steps[2].rate`);
    value: the value as written; expected: what would have been accepted.
    """

    def __init__(self, key: str, value, expected: str, path: str | None = None):
        self.key = key
        self.value = value
        self.expected = expected
        self.path = str(path) if path is not None else None
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        shown = f'"{self.value}"' if isinstance(self.value, str) else repr(self.value)
        return f"{where}{self.key} = {shown}: expected {self.expected}"

    def located(self, path) -> "InputError":
        """The same error, naming the file it came from."""
        return InputError(self.key, self.value, self.expected, path)
