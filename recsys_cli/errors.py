"""Domain errors. The CLI prints them as one red line and exits non-zero;
anything else keeps its traceback."""


class RecsysError(Exception):
    """Base class of the errors a user can fix from the message alone."""


class ConfigError(RecsysError):
    """The composed configuration cannot be used as written."""


class SourceError(RecsysError):
    """A raw input file is missing, empty, unreadable or lacks required columns."""


class ValidationThresholdError(RecsysError):
    """Too many rows failed validation; nothing was written."""


class PiiKeyError(RecsysError):
    """No pseudonymisation key where one is required."""


class LakeError(RecsysError):
    """A lake folder is missing or its manifest does not match its files."""


class SplitError(RecsysError):
    """A split cannot be made as configured (no events, cutoffs out of order...)."""


class LeakageError(RecsysError):
    """A feature depends on events at or after its cutoff."""


class NotFittedError(RecsysError):
    """A model was asked to score before it was fitted."""


class IntegrityError(RecsysError):
    """A folder's files or manifest no longer match what was written (damaged, edited or incomplete)."""


class OutputError(RecsysError):
    """An output path that a command must not write: another command's folder, an input, a project or home
    folder, or one that another process is writing now."""


class PersonalDataError(RecsysError):
    """A column may hold personal data and is not declared safe, dropped or hashed."""


class RegistryError(RecsysError):
    """A registry request that cannot be met as asked: no such model, version or alias, a version an alias
    still points at, a registry location that holds something else."""
