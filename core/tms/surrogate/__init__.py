"""A 3D-CNN surrogate of the NEURON threshold per cell type, its uniform-field baseline, training
and validation report; modules: network, baseline, estimator, training, report."""

from core.tms.surrogate.baseline import UniformFieldBaseline
from core.tms.surrogate.estimator import DEFAULT_SURROGATE_DIR, SURROGATE_VERSION, ThresholdSurrogate, load_surrogate
from core.tms.surrogate.network import ThresholdCNN, import_torch
from core.tms.surrogate.report import ABERRA_2023, BAR, HELD_OUT_SETS, metrics, report_markdown
from core.tms.surrogate.training import HELDOUT_SAMPLE, SplitConfig, add_cli, load_heldout_sample, run_cli, train_surrogates

__all__ = [
    # the network
    "ThresholdCNN",
    "import_torch",
    # the uniform-field baseline
    "UniformFieldBaseline",
    # one cell type's surrogate, and the shipped ones
    "DEFAULT_SURROGATE_DIR",
    "SURROGATE_VERSION",
    "ThresholdSurrogate",
    "load_surrogate",
    # training every cell type, and python -m core tms-train
    "HELDOUT_SAMPLE",
    "SplitConfig",
    "train_surrogates",
    "load_heldout_sample",
    "add_cli",
    "run_cli",
    # the validation report
    "ABERRA_2023",
    "BAR",
    "HELD_OUT_SETS",
    "metrics",
    "report_markdown",
]
