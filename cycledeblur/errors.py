"""The one exception type for mistakes a user can fix: the CLI prints its message and exits with code 2."""


def first_line(error: Exception) -> str:
    """An error's first line (its type's name when it has no message): what a one-line message quotes of it."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


class UserError(Exception):
    """A bad path, config key, image or argument. The message must name the file or key at fault."""


class ConfigError(UserError):
    """An unknown config key, a wrong type or an invalid value."""


class ImageFileError(UserError):
    """One image file that cannot be used: missing, unreadable, corrupt, over the pixel limit, of a kind the model
    cannot take, or not writable. Training skips it (unless `data.strict`); `deblur` and `evaluate` report it and
    go on with the other files."""


class TrainingDiverged(UserError):
    """A loss or weight became NaN or infinite: the hyperparameters (usually a learning rate) are too aggressive."""


class TrainingInterrupted(Exception):
    """SIGINT or SIGTERM stopped a training run after a checkpoint: the CLI exits with 128 + the signal number."""

    def __init__(self, message: str, signal_number: int):
        super().__init__(message)
        self.signal_number = signal_number
