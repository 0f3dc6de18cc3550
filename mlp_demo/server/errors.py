"""The one error a visitor's action raises: what cannot be done, and what to do instead."""


class SessionError(ValueError):
    """What a visitor asked for cannot be done; the message says why and what to do. kind:
    "error", or "info" for what is not a mistake (a drawing that was not read)."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind
