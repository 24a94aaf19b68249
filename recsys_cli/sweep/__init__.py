"""Hyperparameter search with Optuna: search spaces declared in `conf/sweep/`,
one shared study per sweep in a storage many workers can reach, and every trial
trained by `recsys_cli.tasks.train.run`, exactly as `recsys train` would."""
