"""The one exception type the command line turns into a single clear line and a non-zero exit."""


class BudgetVisionError(Exception):
    """A user-facing error: bad input, missing data, over budget. The message is one line."""


class DataError(BudgetVisionError):
    """Missing, corrupt or malformed data files, or an unknown data set."""


class ConfigError(BudgetVisionError):
    """Unknown config key, wrong type, value out of range, malformed override."""


class BudgetError(BudgetVisionError):
    """A run that would exceed its parameter or step budget."""


class StopRequested(BudgetVisionError):
    """SIGINT or SIGTERM during training: the step in flight finished and a checkpoint was written."""

    def __init__(self, message: str, signum: int):
        super().__init__(message)
        self.signum = signum
