"""Functions that return something other than a dict of arrays: reported, never a crash."""

import numpy as np
from gallery_common import correct_grads as _correct


def returns_none(params, X, Y):
    _correct(params, X, Y)


def returns_list(params, X, Y):
    return list(_correct(params, X, Y).values())


def returns_tuple(params, X, Y):
    g = _correct(params, X, Y)
    return g["W1"], g["b1"], g["W2"], g["b2"]


def returns_string(params, X, Y):
    return "W1, b1, W2, b2"


def dict_of_strings(params, X, Y):
    return {k: str(v) for k, v in _correct(params, X, Y).items()}


def ragged_lists(params, X, Y):
    g = _correct(params, X, Y)
    g["W1"] = [[1.0, 2.0], [3.0]]
    return g


def object_values(params, X, Y):
    g = _correct(params, X, Y)
    g["b2"] = {"not": "an array"}
    return g


def scalar_values(params, X, Y):
    return {k: 0.0 for k in params}


def infinite(params, X, Y):
    g = _correct(params, X, Y)
    g["W2"][0, 0] = np.inf
    return g


def huge_values(params, X, Y):
    return {k: np.full(v.shape, 1e308) * np.sign(v + 0.5) for k, v in _correct(params, X, Y).items()}


def complex_values(params, X, Y):
    return {k: v.astype(complex) for k, v in _correct(params, X, Y).items()}


def weird_keys(params, X, Y):
    g = _correct(params, X, Y)
    g[0] = None
    return g
