"""The names a TrainConfig may choose, without importing JAX: the command line is built from them
before JAX starts (``mlpnn-jax train`` loads the data set meanwhile). The modules that implement each
name pair it with its function (``losses.LOSSES``, ``model.ACTIVATIONS``)."""

LOSS_NAMES = ("ce", "kl", "mse", "smooth_ce", "focal", "hinge")
DEFAULT_OPTIONS = {"label_smoothing": 0.1, "gamma": 2.0, "margin": 1.0}  # the losses' keyword options
ACTIVATION_NAMES = ("tanh", "relu")
INITS = ("lecun", "glorot", "notebook")
AUGMENT_KINDS = ("none", "affine", "elastic", "both")
