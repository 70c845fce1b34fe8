from mlpnn_jax.console import entry

entry()
