"""Features from raw recordings, shared by the synthetic generator and the upload readers: EMG
(MEPs, voluntary burst), kinematics (reaching), DTI (FA of the corticospinal tracts)."""

from core.features.dti import dti_feature_table, dti_features, dti_features_from_volume
from core.features.emg import bandpass, emg_feature_table, emg_rms_uv, median_frequency_hz, mep_features
from core.features.kinematics import kinematic_feature_table, kinematic_features, movement_segments, reach_segments, sparc, speed_mm_s
from core.features.tensors import FusionInputs, inputs_from_raw

__all__ = [
    "dti_features", "dti_features_from_volume", "dti_feature_table",
    "bandpass", "mep_features", "emg_rms_uv", "median_frequency_hz", "emg_feature_table",
    "FusionInputs", "inputs_from_raw",
    "speed_mm_s", "movement_segments", "sparc", "kinematic_features", "reach_segments", "kinematic_feature_table",
]
