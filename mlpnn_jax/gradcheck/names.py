"""The names a gradcheck can be told: hidden activations, and the loss names with the candidate (output
head, loss) pairs each allows. Plain data with no imports, so that the CLI's parser (which runs in the
process that only starts the check's child) reads them without starting numpy or JAX."""

ACTIVATION_NAMES = ("tanh", "relu", "sigmoid", "leaky_relu", "identity")
LOSS_FAMILIES = {  # what --loss names: the candidate (head, loss) pairs it allows
    "ce": (("softmax", "ce"), ("sigmoid", "bce"), ("sigmoid", "bce_mean")),
    "kl": (("softmax", "kl"),),
    "mse": (
        ("softmax", "mse"),
        ("softmax", "mse_half"),
        ("softmax", "mse_mean"),
        ("sigmoid", "se_sum"),
        ("sigmoid", "se_half"),
        ("sigmoid", "se_mean"),
    ),
    "smooth_ce": (("softmax", "smooth_ce"),),
    "focal": (("softmax", "focal"),),
    "hinge": (("softmax", "hinge"),),
    "bce": (("sigmoid", "bce"), ("sigmoid", "bce_mean")),
    "se": (("sigmoid", "se_sum"), ("sigmoid", "se_half"), ("sigmoid", "se_mean")),
}
LOSS_NAMES = tuple(LOSS_FAMILIES)
LOSS_OPTIONS = ("label_smoothing", "gamma", "margin")  # the losses' knobs: smooth_ce, focal, hinge
