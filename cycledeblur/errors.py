"""The one exception type for mistakes a user can fix: the CLI prints its message and exits with code 2."""


class UserError(Exception):
    """A bad path, config key, image or argument. The message must name the file or key at fault."""


class ConfigError(UserError):
    """An unknown config key, a wrong type or an invalid value."""


class TrainingDiverged(UserError):
    """A loss or weight became NaN or infinite: the hyperparameters (usually a learning rate) are too aggressive."""
