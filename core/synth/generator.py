"""Synthetic multimodal cohorts with a known ground truth.

How a cohort is made
--------------------
1. **Latent factors** per patient (:func:`sample_latents`): age, age-related reserve, a stroke
   lesion (its geometry sets the true CST lesion load and how much of the tract it transects),
   corticospinal integrity, cortical excitability, motor severity, tremor, levodopa response,
   and a site. Every modality is drawn from these same factors, so modalities correlate as they
   do in real cohorts (a large CST lesion lowers FA, abolishes MEPs, slows reaching and raises
   the NIHSS).
2. **Raw data** per patient, made deterministically from (seed, patient number): an FA volume
   on the MNI152 2 mm grid (:mod:`core.synth.fa_phantom`), surface EMG with TMS MEPs and a voluntary burst,
   and 3-D reaching trajectories (:mod:`core.synth.recordings`).
3. **Features** are computed from the raw data by :mod:`core.features`, never copied from latents.
4. **Outcome**: a linear predictor ``eta`` is a sum of documented terms (:data:`OUTCOME_TERMS`),
   each a nonlinear function of the *true* value behind one or two features, scaled by the
   config's per-modality effect strength, plus a site shift. Improvement (%) is
   ``100 * sigmoid(eta) + N(0, outcome_noise_pct)``; a responder improves by at least
   ``responder_threshold_pct``. The true response probability is therefore
   ``Phi((100 * sigmoid(eta) - threshold) / outcome_noise_pct)``, exactly.

Improvement means: for stroke, the percentage of the ARAT points missing at baseline that are
regained at 3 months; for Parkinson's disease, the percentage reduction of UPDRS-III on
stimulation.

5. **Outcome measures of the bank** (``assets/outcome_bank.yaml``): every measure clinics use that
   the bank lists (FM-UE, ARAT, grip strength, MDS-UPDRS items, PDQ-39, ...) is planted as a
   documented function of latent constructs that include ``eta`` (:mod:`core.synth.measures`), and
   stored as an outcome column named by its key.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np
import pandas as pd

from core.anatomy import load_anatomy
from core.data.raw import EMGRecording, Trajectory
from core.data.schema import MODALITIES
from core.features.dti import dti_feature_table
from core.features.emg import emg_feature_table
from core.features.kinematics import kinematic_feature_table
from core.features.tensors import TENSOR_MODALITIES, FusionInputs, fa_crop, fa_crop_index, mep_tensor, reach_tensor, voluntary_tensor
from core.synth.config import GENERATOR_VERSION, CohortConfig
from core.synth.fa_phantom import fa_batch, voxel_set
from core.synth.latents import clinical_features, donor_patients, emg_parameters, fa_parameters, feature_voxel_sets, missing_modalities, reaching_parameters, sample_latents
from core.synth.measures import bank_measures
from core.synth.outcome import arat_after_recovery, arat_baseline, outcomes_from_terms, planted_effects, term_factors, terms_from_factors
from core.synth.recordings import EMG_FS_HZ, EMG_MUSCLES, KIN_FS_HZ, SWEEP_START_MS, make_emg, make_reaching, patient_rng


def _raw_feature_chunk(args: tuple) -> pd.DataFrame:
    """DTI, EMG and kinematic features of a chunk of patients, from freshly generated raw data.

    Only what the features read is generated: all EMG and kinematic samples, but only the FA
    voxels of the two CSTs and the white-matter sample (the same values the full map shows).
    The voxel sets come with the arguments, so workers never load the MNI templates.
    """
    from core.synth.fa_phantom import fa_batch

    config_dict, latents, voxel_sets = args
    config = CohortConfig.from_dict(config_dict)
    numbers = latents["patient_number"].to_numpy()

    fa_params = [fa_parameters(row, config) for row in latents.to_dict("records")]
    tables = []
    for side, (voxels, n_cst) in voxel_sets.items():  # grouped by affected side: pairs stay aligned
        rows = np.flatnonzero(latents["affected_hemisphere"].to_numpy() == side)
        if len(rows) == 0:
            continue
        fa = fa_batch([fa_params[i] for i in rows], voxels)
        tables.append(dti_feature_table(fa[:, :n_cst], fa[:, n_cst : 2 * n_cst], fa[:, 2 * n_cst :], latents.index[rows]))
    dti = pd.concat(tables).reindex(latents.index)

    emg_rngs = [patient_rng(config.seed, k, 1) for k in numbers]
    sweeps, voluntary = make_emg(emg_rngs, **emg_parameters(latents))
    emg = emg_feature_table(sweeps, voluntary, EMG_FS_HZ, SWEEP_START_MS, EMG_MUSCLES, latents.index)

    kin_rngs = [patient_rng(config.seed, k, 2) for k in numbers]
    position = make_reaching(kin_rngs, **reaching_parameters(latents))
    kin = kinematic_feature_table(position, KIN_FS_HZ, latents.index)
    return pd.concat([dti, emg, kin], axis=1)


class SyntheticRawSource:
    """Regenerates any patient's raw data on demand from the config and the latents."""

    def __init__(self, config: CohortConfig, latents: pd.DataFrame, missing: pd.DataFrame):
        self.config = config
        self.latents = latents
        self.missing = missing
        self.donors = donor_patients(config, latents)

    def _source(self, patient_id: str, modality: str) -> str:
        """Whose raw data this patient's modality shows: a donor's for an uninformative modality."""
        return self.donors[modality][patient_id] if modality in self.donors else patient_id

    def load(self, patient_id: str):
        from core.data.raw import PatientRaw
        from core.synth.fa_phantom import fa_volume, lesion_mask

        gone = self.missing.loc[patient_id]
        raw = PatientRaw(patient_id=patient_id, affine=load_anatomy().affine)
        if not gone["dti"]:
            params = fa_parameters(self.latents.loc[self._source(patient_id, "dti")], self.config)
            raw.fa = fa_volume(params)
            raw.lesion_mask = lesion_mask(params)
        if not gone["emg"]:
            one = self.latents.loc[[self._source(patient_id, "emg")]]
            number = int(one["patient_number"].iloc[0])
            sweeps, voluntary = make_emg([patient_rng(self.config.seed, number, 1)], **emg_parameters(one))
            raw.emg = EMGRecording(EMG_FS_HZ, EMG_MUSCLES, sweeps[0], SWEEP_START_MS, voluntary[0])
        if not gone["kin"]:
            one = self.latents.loc[[self._source(patient_id, "kin")]]
            number = int(one["patient_number"].iloc[0])
            position = make_reaching([patient_rng(self.config.seed, number, 2)], **reaching_parameters(one))
            raw.trajectory = Trajectory(KIN_FS_HZ, position[0])
        return raw


    def fusion_inputs(self, patient_ids) -> FusionInputs:
        """The deep fusion model's inputs of these patients, made in batches.

        Equal to :func:`core.features.tensors.inputs_from_raw` of :meth:`load` for each patient
        (tested), without building whole FA volumes: only the crop's voxels are evaluated.
        """
        ids = list(patient_ids)
        out = FusionInputs.empty(ids)
        gone = self.missing.loc[ids]
        rows = {m: np.flatnonzero(~gone[m].to_numpy()) for m in TENSOR_MODALITIES}
        source = {m: [self._source(ids[i], m) for i in rows[m]] for m in TENSOR_MODALITIES}
        if len(rows["dti"]):
            voxels = _crop_voxels()
            records = self.latents.loc[source["dti"]].to_dict("records")
            for start in range(0, len(records), _FA_BATCH):  # bounds the (patients x voxels) temporaries
                part = [fa_parameters(r, self.config) for r in records[start : start + _FA_BATCH]]
                out.fa[rows["dti"][start : start + _FA_BATCH]] = fa_crop(fa_batch(part, voxels))
        if len(rows["emg"]):
            latents = self.latents.loc[source["emg"]]
            rngs = [patient_rng(self.config.seed, k, 1) for k in latents["patient_number"]]
            sweeps, voluntary = make_emg(rngs, **emg_parameters(latents))
            for row, s_uv, v_uv in zip(rows["emg"], sweeps, voluntary):
                out.mep[row] = mep_tensor(s_uv, EMG_FS_HZ, SWEEP_START_MS, EMG_MUSCLES)
                out.voluntary[row] = voluntary_tensor(v_uv, EMG_FS_HZ, EMG_MUSCLES)
        if len(rows["kin"]):
            latents = self.latents.loc[source["kin"]]
            rngs = [patient_rng(self.config.seed, k, 2) for k in latents["patient_number"]]
            for row, position in zip(rows["kin"], make_reaching(rngs, **reaching_parameters(latents))):
                out.reach[row] = reach_tensor(position, KIN_FS_HZ)
        for m in TENSOR_MODALITIES:
            out.mask[m][rows[m]] = True
        return out


_FA_BATCH = 100


@lru_cache(maxsize=1)
def _crop_voxels():
    return voxel_set(fa_crop_index())


CHUNK_SIZE = 500


def generation_key(config: CohortConfig) -> str:
    """16 hex digits naming the generation of ``config`` by this generator version and chunk size:
    where a stopped generation keeps its finished chunks (:meth:`core.store.Workspace.generate`)."""
    text = json.dumps({"config": config.digest(), "generator": GENERATOR_VERSION, "chunk": CHUNK_SIZE})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def generate_cohort(config: CohortConfig, *, progress=None, n_jobs: int = -1, checkpoint=None):
    """Make a synthetic :class:`~core.data.Cohort` from a config.

    ``progress(done, total)`` reports chunks of :data:`CHUNK_SIZE` patients as they finish.
    ``checkpoint`` (:class:`~core.parallel.PieceCheckpoint`) keeps each chunk's features as it
    finishes, so a stopped generation resumes from the kept chunks. The result depends on neither
    ``n_jobs``, the chunking nor a resume.
    """
    from core.data.cohort import Cohort, GroundTruth
    from core.parallel import parallel_map

    latents = sample_latents(config, n_jobs=n_jobs)
    clinical = clinical_features(latents, config.seed)
    voxel_sets = feature_voxel_sets()
    starts = range(0, len(latents), CHUNK_SIZE)
    pieces = {start: f"patients{start}-{min(start + CHUNK_SIZE, len(latents))}" for start in starts}
    kept = {start: tables["features"] for start in starts if checkpoint is not None and (tables := checkpoint.load(pieces[start])) is not None}
    to_make = [start for start in starts if start not in kept]
    if progress and kept:
        progress(len(kept), len(starts))

    def keep(position: int, features: pd.DataFrame) -> None:
        if checkpoint is not None:
            checkpoint.keep(pieces[to_make[position]], {"features": features})

    chunks = [(config.to_dict(), latents.iloc[start : start + CHUNK_SIZE], voxel_sets) for start in to_make]
    jobs = n_jobs if len(chunks) > 2 else 1  # worker start-up outweighs small cohorts
    fresh = parallel_map(_raw_feature_chunk, chunks, n_jobs=jobs, on_result=keep,
                         progress=(lambda done, _: progress(len(kept) + done, len(starts))) if progress else None)
    made = kept | dict(zip(to_make, fresh))
    measured = pd.concat([made[start] for start in starts])
    for modality, donor in donor_patients(config, latents).items():
        columns = [c for c in measured.columns if c.startswith(modality + ".")]
        measured[columns] = measured.loc[donor.to_numpy(), columns].to_numpy()
    features = pd.concat([measured, clinical], axis=1)

    missing = missing_modalities(config, latents.index)
    for modality in MODALITIES:
        columns = [c for c in features.columns if c.startswith(modality + ".")]
        features.loc[missing[modality].to_numpy(), columns] = np.nan

    factors = term_factors(latents, clinical, config)
    terms = terms_from_factors(factors, latents.index)
    outcomes = outcomes_from_terms(terms, latents, config)
    if "stroke" in config.indications:
        outcomes["arat_3mo"] = arat_after_recovery(latents, outcomes["improvement_pct"], config.seed)
    measures, _ = bank_measures(latents, outcomes["eta"].to_numpy(), config.seed)
    outcomes = outcomes.join(measures.loc[:, measures.notna().any()])  # a single-indication cohort has no use for the other's measures
    patients = latents[["patient_number", "indication", "site", "affected_hemisphere"]].copy()
    patients["arat_baseline"] = arat_baseline(latents, config.seed)
    return Cohort(
        name=config.name,
        patients=patients,
        features=features,
        outcomes=outcomes[[c for c in outcomes.columns if c not in ("eta", "expected_improvement_pct")]],
        responder_threshold_pct=config.responder_threshold_pct,
        provenance={"kind": "synthetic", "config": config.to_dict(), "config_digest": config.digest(), "generator_version": GENERATOR_VERSION},
        ground_truth=GroundTruth(latents=latents, terms=terms, feature_effects=planted_effects(factors, latents["indication"].to_numpy())),
        raw=SyntheticRawSource(config, latents, missing),
    )
