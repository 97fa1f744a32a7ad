"""Short training runs with per-layer statistics over the steps (fastai's ActivationStats).

The trainer's core: settings in (``TrainSpec`` and what to train), plain NumPy out
(``TrainingRecord``); no Hydra, no files, no plots. ``train_chain`` trains every trial
of a group of chain configs as one batched computation; ``train_model`` trains any
``nn.Module`` trial by trial, hooked as ``initlab.probe`` hooks it. ``tables`` turns a
record into tidy pandas frames (the only module here that imports pandas).
"""

from initlab.train.chain import ChainConfig, sequential, train_chain
from initlab.train.data import Dataset, load_data
from initlab.train.model import train_model
from initlab.train.record import TrainingRecord
from initlab.train.schedule import one_cycle, schedule
from initlab.train.spec import TrainSpec

__all__ = ["ChainConfig", "Dataset", "TrainSpec", "TrainingRecord", "load_data", "one_cycle",
           "schedule", "sequential", "train_chain",
           "train_model"]
