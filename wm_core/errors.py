"""The errors a stage reports as one line (anything else is a bug and keeps its traceback)."""


class WMError(Exception):
    """Base of every expected failure: bad params, bad data, bad model file, bad numbers."""


class ParamsError(WMError, ValueError):
    """A params.yaml problem; the message is one line naming the key."""


class DataError(WMError, ValueError):
    """A dataset is missing, corrupt or does not follow the schema."""


class CheckpointError(WMError, ValueError):
    """A model file is missing, of another kind, or of another format version."""


class TrainingError(WMError, RuntimeError):
    """Training produced a non-finite loss or parameter."""
