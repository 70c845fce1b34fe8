"""The training configuration: one frozen dataclass whose fields declare their own help, choices and check.

Each field is declared once, with ``option(...)``: its default, a help line, its choices or a check and
the words that say what it expects. ``TrainConfig`` validates every field from that table, the CLI
generates its ``train`` flags from it, and ``to_json`` saves it, so a new option is one declaration here.
Errors name the field (``lr``), not a command-line flag: the CLI translates.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import typing

from mlpnn_jax.names import ACTIVATION_NAMES, AUGMENT_KINDS, DEFAULT_OPTIONS, INITS, LOSS_NAMES

OPTIMIZERS = ("sgd", "momentum", "adam", "adamw")
ADAMW_WEIGHT_DECAY = 1e-4  # adamw's decay when weight_decay is not given (the others': none)
SCHEDULES = ("constant", "cosine", "onecycle")
DTYPES = ("float32", "float64")
PRECISIONS = ("default", "high", "highest")


def _same(name):
    return name


class ConfigError(ValueError):
    """A bad training option: one line naming the config field (``field``) and what was expected.

    ``describe(name)`` renders the message with ``name(field)`` for the field (the CLI passes its flags).
    """

    def __init__(self, field, text):
        super().__init__(field, text)
        self.field, self.text = field, text

    def describe(self, name=_same):
        return f"{name(self.field)}: {self.text}"

    def __str__(self):
        return self.describe()


def option(default, help, *, choices=None, check=None, expected=None, directory=False):
    """A config field that carries its own help, choices and check.

    Args:
        default: the default value (None: the field is optional and None is always accepted).
        help: one line for ``--help``.
        choices: the accepted values; the check and the expected-text follow from them.
        check: ``check(value) -> bool`` for other fields; ``expected`` says what it accepts.
        directory: the value names a directory (the CLI checks it exists and makes it absolute).
    """
    if choices is not None:
        check = functools.partial(_member, tuple(choices))
        expected = f"one of {', '.join(choices)}"
    metadata = {
        "help": help,
        "choices": choices,
        "check": check,
        "expected": expected,
        "directory": directory,
    }
    return dataclasses.field(default=default, metadata=metadata)


def _member(choices, value):
    return value in choices


def _in(low, high, closed_low=True, closed_high=False):
    """A check that a number lies between low and high (each end open or closed)."""

    def check(v):
        return (low <= v if closed_low else low < v) and (v <= high if closed_high else v < high)

    return check


# preset name: the values of the fields a config is not given (then the fields' own defaults). "fast" is
# the defaults: 98% in two epochs. "frontier" was chosen on validation (the last 10000 training images,
# seeds 0-2, by a rule written down before the runs): affine + EMA 0.999 for 150 epochs, 99.35% mean
# validation accuracy, against 99.20% for 50 epochs (README, "The notebook's network at its best").
# "deep" is Ciresan et al.'s smallest net (1000-500) with their elastic + affine distortions; relu was
# chosen over tanh on validation (99.58% against 99.40% at 200 epochs, seed 0) before its test runs, and
# a second seed agreed (99.45% against 99.27%); 400 epochs did no better (docs/experiment_log.md).
PRESETS = {
    "fast": {},
    "frontier": {
        "augment": "affine",
        "ema_decay": 0.999,
        "epochs": 150,
    },
    "deep": {
        "hidden": (1000, 500),
        "activation": "relu",
        "augment": "both",
        "ema_decay": 0.999,
        "epochs": 200,
    },
}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. The defaults are the recipe the README explains.

    Every field's help, choices and check are in its ``option(...)``; see ``--help`` of ``mlpnn-jax
    train``. label_smoothing > 0 trains on the soft targets (1 - eps) one_hot + eps / 10 (with "kl", the KL
    to those; for "smooth_ce" it is that loss's own eps). standardize trains on (x - mean) / std of the
    training pixels, and the returned params have it folded into W1 and b1, so they take raw pixels.

    ``TrainConfig(...)`` takes its fields as given (``preset`` only records a name); ``from_preset(...)``
    first fills the fields not given from the named preset's table, as the command line does.
    """

    loss: str = option("ce", "per-example loss", choices=LOSS_NAMES)
    label_smoothing: float = option(
        0.1,
        "train on smoothed soft targets (with kl: KL to them)",
        check=_in(0, 1),
        expected="in [0, 1)",
    )
    focal_gamma: float = option(
        DEFAULT_OPTIONS["gamma"], "focal loss gamma", check=_in(0, math.inf), expected="a finite number >= 0"
    )
    hinge_margin: float = option(
        DEFAULT_OPTIONS["margin"],
        "hinge loss margin",
        check=_in(0, math.inf, closed_low=False),
        expected="a finite positive number",
    )
    optimizer: str = option("momentum", "optimizer (momentum: Nesterov)", choices=OPTIMIZERS)
    lr: float = option(
        0.1,
        "peak learning rate",
        check=lambda v: math.isfinite(v) and v > 0,
        expected="a positive number",
    )
    momentum: float = option(0.9, "momentum coefficient", check=_in(0, 1), expected="in [0, 1)")
    weight_decay: float | None = option(
        None,
        f"weight decay (sgd, momentum, adam: L2 of the W, 0; adamw: its own, {ADAMW_WEIGHT_DECAY:g})",
        check=_in(0, math.inf),
        expected="a finite number >= 0",
    )
    schedule: str = option("onecycle", "learning-rate schedule", choices=SCHEDULES)
    warmup: float = option(
        0.1, "fraction of the steps spent warming up", check=_in(0, 1), expected="a fraction in [0, 1)"
    )
    batch_size: int = option(128, "minibatch size", check=lambda v: v >= 1, expected="a positive integer")
    epochs: int = option(2, "number of epochs", check=lambda v: v >= 1, expected="a positive integer")
    hidden: tuple[int, ...] = option(
        (1000,),
        "hidden sizes; several: deeper",
        check=lambda v: len(v) >= 1 and min(v) >= 1,
        expected="one or more positive layer sizes",
    )
    activation: str = option("tanh", "hidden activation", choices=ACTIVATION_NAMES)
    init: str = option("glorot", "initial weights", choices=INITS)
    dtype: str = option("float32", "params and data dtype", choices=DTYPES)
    compute_dtype: str | None = option(
        None, "bfloat16: bf16 compute with float32 master weights", choices=("bfloat16",)
    )
    precision: str = option(
        "default", "matmul precision (highest: true float32 on GPU/TPU)", choices=PRECISIONS
    )
    standardize: bool = option(True, "train on standardized pixels (off: raw pixels)")
    augment: str = option(
        "none", "random distortions of every training batch, fresh each epoch", choices=AUGMENT_KINDS
    )
    augment_degrees: float = option(
        10.0,
        "affine: rotations uniform in +-degrees",
        check=_in(0, 180, closed_high=True),
        expected="in [0, 180]",
    )
    augment_scale: tuple[float, ...] = option(
        (0.9, 1.1),
        "affine: scale factors uniform in [low, high]",
        check=lambda v: len(v) == 2 and 0 < v[0] <= v[1] < math.inf,
        expected="two numbers 0 < low <= high",
    )
    augment_shear: float = option(
        0.15,
        "affine: shear factors uniform in +-shear",
        check=_in(0, math.inf),
        expected="a finite number >= 0",
    )
    augment_shift: float = option(
        2.0, "affine: shifts uniform in +-pixels", check=_in(0, math.inf), expected="a finite number >= 0"
    )
    elastic_alpha: float = option(
        34.0, "elastic: displacement scale in pixels", check=_in(0, math.inf), expected="a finite number >= 0"
    )
    elastic_sigma: float = option(
        4.0,
        "elastic: Gaussian smoothing width in pixels",
        check=_in(0, math.inf, closed_low=False),
        expected="a finite number > 0",
    )
    dropout_input: float = option(
        0.0, "dropout rate of the input pixels", check=_in(0, 1), expected="in [0, 1)"
    )
    dropout_hidden: float = option(
        0.0, "dropout rate of the hidden units", check=_in(0, 1), expected="in [0, 1)"
    )
    ema_decay: float = option(
        0.0,
        "evaluate and save a moving average of the weights with this decay per step (0: off)",
        check=_in(0, 1),
        expected="in [0, 1)",
    )
    validation: int = option(
        0,
        "hold out the last N training images as a validation set (not trained on)",
        check=lambda v: v >= 0,
        expected="an integer >= 0",
    )
    seed: int = option(0, "random seed", check=_in(0, 2**32), expected="an integer in [0, 2**32)")
    target_accuracy: float | None = option(
        None,
        "stop when the accuracy first reaches this (with --validation: the validation accuracy)",
        check=_in(0, 1, closed_low=False, closed_high=True),
        expected="in (0, 1]",
    )
    patience: int | None = option(
        None,
        "stop after this many epochs without a new best validation accuracy (needs --validation)",
        check=lambda v: v >= 1,
        expected="a positive integer",
    )
    data_dir: str | None = option(
        None, "a directory of MNIST-format IDX files (default: the bundled MNIST)", directory=True
    )
    preset: str = option(
        "fast", "a recipe: the values of the options not given (listed below)", choices=PRESETS
    )

    def __post_init__(self):
        for name in TUPLE_FIELDS:  # the CLI gives lists
            with contextlib.suppress(TypeError, ValueError):  # a bad value is reported by the check below
                object.__setattr__(self, name, tuple(map(field_type(name), getattr(self, name))))
        for f in dataclasses.fields(self):
            _check_field(f, getattr(self, f.name))
        for field, rule, expected in RULES:
            if not rule(self):
                raise ConfigError(field, f"expected {expected}, got {getattr(self, field)!r}")

    @classmethod
    def from_preset(cls, **given):
        """The config of ``given`` fields, the others from the preset ``given["preset"]`` (default fast)."""
        name = given.get("preset", "fast")
        if name not in PRESETS:
            raise ConfigError("preset", f"expected one of {', '.join(PRESETS)}, got {name!r}")
        return cls(**{**PRESETS[name], **given})

    def in_effect(self):
        """The JSON-ready dict of the fields that act in this config (no hinge_margin without hinge...)."""
        return {k: v for k, v in self.to_json().items() if IN_EFFECT.get(k, _always)(self)}

    @property
    def decay(self):
        """The weight decay in effect: weight_decay, or its optimizer's default when not given."""
        if self.weight_decay is not None:
            return self.weight_decay
        return ADAMW_WEIGHT_DECAY if self.optimizer == "adamw" else 0.0

    def augment_config(self):
        """The AugmentConfig of the augment fields."""
        from mlpnn_jax.augment import AugmentConfig

        return AugmentConfig(
            self.augment,
            self.augment_degrees,
            self.augment_scale,
            self.augment_shear,
            self.augment_shift,
            self.elastic_alpha,
            self.elastic_sigma,
        )

    def loss_options(self):
        """The keyword options of this config's loss function."""
        return {
            "smooth_ce": {"label_smoothing": self.label_smoothing},
            "focal": {"gamma": self.focal_gamma},
            "hinge": {"margin": self.hinge_margin},
        }.get(self.loss, {})

    def to_json(self):
        """A JSON-ready dict of the config."""
        return {**dataclasses.asdict(self), **{name: list(getattr(self, name)) for name in TUPLE_FIELDS}}

    @classmethod
    def from_json(cls, d):
        """The config of ``to_json``'s dict; unknown keys are an error."""
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError("config", f"unknown keys {sorted(unknown)}")
        if "preset" not in d and d.get("optimizer") != "adamw":
            # saved before weight decay applied to every optimizer: its weight_decay was adamw's only
            d = {**d, "weight_decay": None}
        return cls(**d)


TUPLE_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if isinstance(f.default, tuple))

# Checks that involve several fields: (the field blamed, rule(config) -> bool, what is expected).
RULES = [
    ("label_smoothing", lambda c: c.loss != "smooth_ce" or c.label_smoothing > 0, "eps > 0 for smooth_ce"),
    (
        "patience",
        lambda c: c.patience is None or c.validation > 0,
        "a validation set to watch (validation > 0)",
    ),
]


def _always(config):
    return True


_AFFINE, _ELASTIC = ("affine", "both"), ("elastic", "both")
# field: rule(config) -> whether the field acts in that config; a field not listed always does
IN_EFFECT = {
    "focal_gamma": lambda c: c.loss == "focal",
    "hinge_margin": lambda c: c.loss == "hinge",
    "momentum": lambda c: c.optimizer == "momentum",
    "augment_degrees": lambda c: c.augment in _AFFINE,
    "augment_scale": lambda c: c.augment in _AFFINE,
    "augment_shear": lambda c: c.augment in _AFFINE,
    "augment_shift": lambda c: c.augment in _AFFINE,
    "elastic_alpha": lambda c: c.augment in _ELASTIC,
    "elastic_sigma": lambda c: c.augment in _ELASTIC,
    "patience": lambda c: c.patience is not None,
    "target_accuracy": lambda c: c.target_accuracy is not None,
}


def _check_field(f, value):
    """Raises ConfigError unless ``value`` passes field ``f``'s check (None passes an optional field)."""
    check = f.metadata.get("check")
    if check is None or (value is None and f.default is None):
        return
    try:
        ok = bool(check(value))
    except (TypeError, ValueError):  # a value of the wrong type: not what was expected either
        ok = False
    if not ok:
        got = list(value) if isinstance(value, tuple) else value
        raise ConfigError(f.name, f"expected {f.metadata['expected']}, got {got!r}")


def field_type(name):
    """The scalar type of field ``name`` (int for ``tuple[int, ...]``, str for ``str | None``)."""
    hint = typing.get_type_hints(TrainConfig)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    return args[0] if args else hint
