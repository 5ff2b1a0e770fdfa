"""An object that runs code when unpickled: what a malicious checkpoint would hold."""


class Planted:
    """Unpickling this object would run `exec`, which writes a marker file."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)
