"""Hydra launchers `hydra/launcher=slurm` and `hydra/launcher=local` (conf/hydra/launcher/)."""
