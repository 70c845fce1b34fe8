import sys

from mlpnn_jax.cli import main

sys.exit(main())
