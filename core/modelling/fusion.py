"""Deep multimodal fusion learned from the raw data: a 3D CNN on the FA map, CNN-GRU encoders of the
MEP sweeps, the voluntary EMG and the reach trajectory, and an MLP on the clinical values.

Each branch turns its modality into an embedding of ``embedding_size`` numbers. A patient without a
modality gets that branch's learned *missing* embedding instead (and, while training, a present
modality is replaced by it with probability ``modality_dropout``), so every patient is predicted and
the network learns to do without any modality. ``fusion="intermediate"`` concatenates the
embeddings into one head; ``fusion="late"`` averages the logits of one head per branch.

:class:`FusionClassifier` follows scikit-learn's conventions: ``fit`` returns ``self``, learned
attributes end in ``_``, ``predict_proba``/``predict`` need a fitted model (``NotFittedError``).
Input scaling and early stopping (an inner split of the training patients) happen inside ``fit``,
so a cross-validation fold's test patients never shape the model. On the CPU the same seed gives
the same weights and predictions. Weights persist as a torch ``state_dict`` (loaded with
``weights_only=True``) beside a JSON file; nothing is pickled.

Explanations are exact Shapley values over the four modalities (dti, emg, kin, clin): the model is
evaluated with every subset of them knocked out (replaced by their missing embeddings), so for each
patient the values add up to the logit with all modalities minus the logit with none.
"""

from __future__ import annotations

import itertools
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted

from core.errors import InputError
from core.features.tensors import FA_CROP_SHAPE, MEP_SHAPE, REACH_SHAPE, VOLUNTARY_SHAPE, FusionInputs
from core.modelling.estimators import check_outcome, outcome_strata
from core.modelling.explanation import Explanation, shapley_values

__all__ = ["FUSION_MODALITIES", "FusionDesign", "FusionClassifier", "fusion_design", "load_fusion"]

# The modalities the model is explained by; "emg" covers the MEP and the voluntary-EMG branches.
FUSION_MODALITIES = ("dti", "emg", "kin", "clin")
_BRANCH_MODALITY = {"fa": "dti", "mep": "emg", "voluntary": "emg", "reach": "kin", "clin": "clin"}


@dataclass
class FusionDesign:
    """What the fusion model reads for n patients: their raw inputs and their clinical values.

    inputs : :class:`~core.features.tensors.FusionInputs` (FA crop, MEP, voluntary EMG, reach, masks).
    clinical : (n, k) float clinical values (NaN = missing), columns ``clinical_names``.
    """

    inputs: FusionInputs
    clinical: np.ndarray
    clinical_names: tuple

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def patient_ids(self) -> np.ndarray:
        return self.inputs.patient_ids

    def take(self, rows) -> FusionDesign:
        rows = np.asarray(rows)
        return FusionDesign(self.inputs.take(rows), self.clinical[rows], self.clinical_names)

    def masks(self) -> np.ndarray:
        """(n, 4) bool: which of :data:`FUSION_MODALITIES` each patient has."""
        clin = np.isfinite(self.clinical).any(axis=1) if self.clinical.shape[1] else np.zeros(len(self), bool)
        return np.stack([self.inputs.mask["dti"], self.inputs.mask["emg"], self.inputs.mask["kin"], clin], axis=1)


def fusion_design(cohort, inputs: FusionInputs) -> FusionDesign:
    """The design of a cohort: its cached raw inputs in the cohort's patient order and its ``clin.*`` values."""
    inputs = inputs.reindex(list(cohort.patients.index))
    names = tuple(cohort.features_of("clin"))
    clinical = cohort.features[list(names)].to_numpy(dtype=float) if names else np.zeros((cohort.n_patients, 0))
    return FusionDesign(inputs, clinical, names)


def _torch():
    import torch

    return torch


def _network(n_clinical: int, embedding_size: int, fusion: str):
    """The fusion network (built lazily: torch is imported only when a fusion model is used)."""
    torch = _torch()
    nn = torch.nn

    def sequence_encoder(channels: int, kernel: int, stride: int):
        return nn.Sequential(nn.Conv1d(channels, 16, kernel, stride=stride), nn.ReLU(), nn.Conv1d(16, 16, kernel, stride=stride), nn.ReLU())

    class GRUBranch(nn.Module):
        """1-D convolutions, then a GRU over the shortened sequence: the CNN-LSTM pattern."""

        def __init__(self, channels, kernel, stride):
            super().__init__()
            self.conv = sequence_encoder(channels, kernel, stride)
            self.gru = nn.GRU(16, embedding_size, batch_first=True)

        def forward(self, x):
            _, hidden = self.gru(self.conv(x).transpose(1, 2))
            return hidden[-1]

    class FusionNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = nn.ModuleDict({
                "fa": nn.Sequential(nn.Conv3d(5, 8, 3, padding=1), nn.ReLU(), nn.MaxPool3d(2), nn.Conv3d(8, 16, 3, padding=1), nn.ReLU(),
                                    nn.AdaptiveAvgPool3d((3, 3, 4)), nn.Flatten(), nn.Linear(16 * 36, embedding_size), nn.ReLU()),
                "mep": GRUBranch(MEP_SHAPE[0], 5, 2),
                "voluntary": GRUBranch(VOLUNTARY_SHAPE[0], 9, 4),
                "reach": GRUBranch(REACH_SHAPE[0], 5, 2),
                "clin": nn.Sequential(nn.Linear(2 * n_clinical, embedding_size), nn.ReLU()),
            })  # fmt: skip
            # Besides FA: its left-right asymmetry (FA minus the mirrored map: a unilateral lesion
            # stands out against the healthy side) and where a voxel is (-1..1 along x, y, z: what
            # matters may be where damage sits along the tract, which pooling alone blurs).
            # Channels-last strides make the CPU's 3D convolutions about 1.7x faster (same network, same maths).
            self.branches["fa"].to(memory_format=torch.channels_last_3d)
            grids = torch.meshgrid(*(torch.linspace(-1.0, 1.0, n) for n in FA_CROP_SHAPE), indexing="ij")
            self.register_buffer("fa_coordinates", torch.stack(grids).unsqueeze(0))
            self.missing = nn.ParameterDict({name: nn.Parameter(torch.zeros(embedding_size)) for name in self.branches})
            if fusion == "intermediate":
                self.head = nn.Sequential(nn.Linear(len(self.branches) * embedding_size, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 1))
            else:
                self.heads = nn.ModuleDict({name: nn.Linear(embedding_size, 1) for name in self.branches})

        def forward(self, batch: dict, present: dict):
            """Logits (n,) from the batch's arrays and, per branch, a (n,) bool of present inputs."""
            embeddings = {}
            for name, branch in self.branches.items():
                x = batch[name]
                if name == "fa":
                    x = torch.cat([x.unsqueeze(1), (x - x.flip(1)).unsqueeze(1), self.fa_coordinates.expand(len(x), -1, -1, -1, -1)], dim=1)
                    x = x.contiguous(memory_format=torch.channels_last_3d)
                z = branch(x)
                embeddings[name] = torch.where(present[name].unsqueeze(1), z, self.missing[name].expand_as(z))
            if fusion == "intermediate":
                return self.head(torch.cat([embeddings[n] for n in self.branches], dim=1)).squeeze(1)
            return torch.stack([self.heads[n](embeddings[n]).squeeze(1) for n in self.branches], dim=1).mean(dim=1)

    return FusionNet()


class FusionClassifier(ClassifierMixin, BaseEstimator):
    """Deep fusion classifier of the responder label from raw data (see the module docstring).

    Parameters
    ----------
    fusion : "intermediate" (one head on the concatenated embeddings) or "late" (mean of per-branch heads).
    embedding_size : numbers per branch embedding.
    max_epochs : most passes over the training patients; early stopping picks the epoch used.
    batch_size, learning_rate, weight_decay : AdamW training.
    modality_dropout : while training, the chance that a present modality is hidden from a patient.
    early_stopping_fraction : share of the training patients held out (stratified) to pick the epoch.
    patience : stop after this many epochs without a lower held-out log-loss.
    seed : seed of the initial weights, the inner split, the batches and the dropout.
    device : "auto" (CUDA when present, else CPU), "cpu" or "cuda".
    n_threads : CPU threads torch may use (None: one per core). Results are reproducible for a given number.
    """

    def __init__(self, fusion: str = "intermediate", embedding_size: int = 32, max_epochs: int = 40, batch_size: int = 64,
                 learning_rate: float = 2e-3, weight_decay: float = 1e-4, modality_dropout: float = 0.2,
                 early_stopping_fraction: float = 0.15, patience: int = 6, seed: int = 0, device: str = "auto", n_threads: int | None = None):
        self.fusion = fusion
        self.embedding_size = embedding_size
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.modality_dropout = modality_dropout
        self.early_stopping_fraction = early_stopping_fraction
        self.patience = patience
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    output_space = "log-odds"

    # --- input scaling, learned on the training patients ----------------------------------------
    def _scales(self, design: FusionDesign) -> dict:
        """Per-channel centre and scale of every branch's input, from patients that have it."""
        inputs = design.inputs
        scales = {}
        for name, array, mask in (("mep", inputs.mep, inputs.mask["emg"]), ("voluntary", inputs.voluntary, inputs.mask["emg"]),
                                  ("reach", inputs.reach, inputs.mask["kin"])):
            present = array[mask].astype(np.float32)
            centre = present.mean(axis=(0, 2)) if len(present) else np.zeros(array.shape[1], np.float32)
            spread = present.std(axis=(0, 2)) if len(present) else np.ones(array.shape[1], np.float32)
            scales[name] = (centre.tolist(), np.where(spread > 0, spread, 1.0).tolist())
        fa = inputs.fa[inputs.mask["dti"]].astype(np.float32)
        scales["fa"] = ([float(fa.mean()) if len(fa) else 0.0], [float(fa.std()) if len(fa) and fa.std() > 0 else 1.0])
        clin = design.clinical
        with np.errstate(all="ignore"):
            centre = np.nan_to_num(np.nanmean(clin, axis=0)) if clin.shape[1] else np.zeros(0)
            spread = np.nan_to_num(np.nanstd(clin, axis=0), nan=1.0) if clin.shape[1] else np.ones(0)
        scales["clin"] = (centre.tolist(), np.where(spread > 0, spread, 1.0).tolist())
        return scales

    def _device(self):
        torch = _torch()
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    def _tensors(self, design: FusionDesign) -> tuple[dict, np.ndarray]:
        """Scaled torch inputs, and (n, 4) bool of the modalities each patient has."""
        torch = _torch()
        device = self._device()
        inputs = design.inputs

        def scaled(name, array):
            centre, spread = (np.asarray(v, np.float32) for v in self.scales_[name])
            shape = (1, -1) + (1,) * (array.ndim - 2) if name != "fa" else (1,) * array.ndim
            return torch.from_numpy(((array.astype(np.float32) - centre.reshape(shape)) / spread.reshape(shape)).astype(np.float32)).to(device)

        clin = design.clinical
        centre, spread = (np.asarray(v) for v in self.scales_["clin"])
        known = np.isfinite(clin)
        clin_in = np.concatenate([np.where(known, (clin - centre) / spread, 0.0), known.astype(float)], axis=1).astype(np.float32)
        batch = {"fa": scaled("fa", inputs.fa), "mep": scaled("mep", inputs.mep), "voluntary": scaled("voluntary", inputs.voluntary),
                 "reach": scaled("reach", inputs.reach), "clin": torch.from_numpy(clin_in).to(device)}
        return batch, design.masks()

    def _present(self, has: np.ndarray) -> dict:
        """Per branch, a torch (n,) bool of the patients whose modality the network may see."""
        torch = _torch()
        return {name: torch.from_numpy(has[:, FUSION_MODALITIES.index(m)].copy()).to(self._device()) for name, m in _BRANCH_MODALITY.items()}

    # --- training ---------------------------------------------------------------------------------
    def fit(self, X: FusionDesign, y, on_epoch=None) -> FusionClassifier:
        """Fit on a :class:`FusionDesign` and the responder labels (0/1); returns ``self``.

        ``on_epoch(row)`` receives each epoch's ``{"epoch", "train_loss", "valid_loss"}``.
        """
        torch = _torch()
        if not isinstance(X, FusionDesign):
            raise InputError(f"the fusion model reads a FusionDesign (raw inputs and clinical values), found {type(X).__name__}.")
        y = check_outcome(y, "responder")
        if len(y) != len(X):
            raise InputError(f"{len(X)} patients but {len(y)} outcomes; expected one outcome per patient.")
        if self.fusion not in ("intermediate", "late"):
            raise InputError(f"fusion must be 'intermediate' or 'late', found {self.fusion!r}.", field="fusion")
        torch.manual_seed(self.seed)
        torch.set_num_threads(self.n_threads or os.cpu_count() or 1)
        rng = np.random.default_rng(self.seed)
        strata = outcome_strata(y, True)
        held = np.sort(np.concatenate([rng.choice(np.flatnonzero(strata == v), int(round(self.early_stopping_fraction * (strata == v).sum())), replace=False)
                                       for v in np.unique(strata)]))
        keep = np.setdiff1d(np.arange(len(y)), held)
        self.clinical_names_ = tuple(X.clinical_names)
        self.scales_ = self._scales(X.take(keep))
        device = self._device()
        network = _network(len(self.clinical_names_), self.embedding_size, self.fusion).to(device)
        optimiser = torch.optim.AdamW(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        loss_fn = torch.nn.BCEWithLogitsLoss()
        train_batch, train_has = self._tensors(X.take(keep))
        valid_batch, valid_has = self._tensors(X.take(held))
        train_present, valid_present = self._present(train_has), self._present(valid_has)
        y_train = torch.from_numpy(y[keep].astype(np.float32)).to(device)
        y_valid = torch.from_numpy(y[held].astype(np.float32)).to(device)
        generator = torch.Generator().manual_seed(self.seed)
        best, best_state, since_best, history = math.inf, None, 0, []
        for epoch in range(self.max_epochs):
            network.train()
            order = torch.randperm(len(keep), generator=generator)
            total = 0.0
            for start in range(0, len(keep), self.batch_size):
                rows = order[start : start + self.batch_size].to(device)
                # Modality dropout: one draw per patient and modality, so both EMG branches are hidden together.
                shown = {m: (torch.rand(len(rows), generator=generator) >= self.modality_dropout).to(device) for m in FUSION_MODALITIES}
                present = {name: train_present[name][rows] & shown[_BRANCH_MODALITY[name]] for name in train_present}
                optimiser.zero_grad()
                loss = loss_fn(network({k: v[rows] for k, v in train_batch.items()}, present), y_train[rows])
                loss.backward()
                optimiser.step()
                total += loss.item() * len(rows)
            network.eval()
            with torch.no_grad():
                valid_loss = float(loss_fn(network(valid_batch, valid_present), y_valid))
            history.append({"epoch": epoch + 1, "train_loss": total / len(keep), "valid_loss": valid_loss})
            if on_epoch is not None:
                on_epoch(history[-1])
            if valid_loss < best - 1e-4:
                best, since_best = valid_loss, 0
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            else:
                since_best += 1
                if since_best >= self.patience:
                    break
        network.load_state_dict(best_state)
        network.eval()
        self.network_ = network
        self.history_ = pd.DataFrame(history)
        self.best_epoch_ = int(self.history_.loc[self.history_["valid_loss"].idxmin(), "epoch"])
        self.classes_ = np.array([0, 1])
        return self

    # --- prediction and explanation ---------------------------------------------------------------
    def _check(self, X) -> FusionDesign:
        check_is_fitted(self, "network_")
        if not isinstance(X, FusionDesign):
            raise InputError(f"the fusion model reads a FusionDesign (raw inputs and clinical values), found {type(X).__name__}.")
        if tuple(X.clinical_names) != self.clinical_names_:
            raise InputError(f"clinical columns {list(X.clinical_names)} differ from the ones the model was trained on {list(self.clinical_names_)}.")
        return X

    def predict_margin(self, X: FusionDesign, hide: np.ndarray | None = None) -> np.ndarray:
        """(n,) log-odds of response; ``hide`` (n, 4) bool knocks modalities out (what if this patient had no scan?)."""
        return self._margins(self._check(X), [hide])[0]

    def _margins(self, X: FusionDesign, hides: list) -> list[np.ndarray]:
        """Log-odds of every patient under each ``hides`` entry ((n, 4) bool or None); inputs scaled once."""
        torch = _torch()
        out = [[] for _ in hides]
        with torch.no_grad():
            for start in range(0, len(X), 512):
                rows = np.arange(start, min(start + 512, len(X)))
                batch, has = self._tensors(X.take(rows))
                for margins, hide in zip(out, hides):
                    present = self._present(has if hide is None else has & ~hide[rows])
                    margins.append(self.network_(batch, present).cpu().numpy().astype(np.float64))
        return [np.concatenate(m) if m else np.zeros(0) for m in out]

    def output_from_margin(self, margin) -> np.ndarray:
        from core.modelling.explanation import output_of_margin

        return output_of_margin(margin, self.output_space)

    def predict_proba(self, X: FusionDesign) -> np.ndarray:
        """(n, 2) probabilities of non-response and response."""
        p = self.output_from_margin(self.predict_margin(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: FusionDesign) -> np.ndarray:
        """(n,) predicted label: 1 where the probability of response is at least 0.5."""
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]

    def explain(self, X: FusionDesign) -> Explanation:
        """Exact Shapley values of the four modalities for every patient, in log-odds.

        The base value is the logit with every modality knocked out; values add up to the logit
        with all of them. ``data`` is 1 where the patient has the modality, 0 where not.
        """
        X = self._check(X)
        n, k = len(X), len(FUSION_MODALITIES)
        coalitions = [frozenset(c) for size in range(k + 1) for c in itertools.combinations(FUSION_MODALITIES, size)]
        hides = [np.tile([m not in c for m in FUSION_MODALITIES], (n, 1)) for c in coalitions]
        value = dict(zip(coalitions, self._margins(X, hides)))
        base = value[frozenset()]
        phi = shapley_values({c: v - base for c, v in value.items() if c}, FUSION_MODALITIES)
        return Explanation(phi, base, X.masks().astype(float), FUSION_MODALITIES, self.output_space, pd.Index(X.patient_ids))

    def fa_saliency(self, X: FusionDesign, steps: int = 32) -> np.ndarray:
        """Integrated gradients of the log-odds with respect to the FA crop: where the FA branch looks.

        Returns (n, 24, 11, 28) attributions in log-odds per 4 mm voxel (grid
        :data:`~core.features.tensors.FA_CROP_AFFINE`). The path runs from a blank map (every voxel
        at the training patients' mean FA) to the patient's map, every other input as it is; the
        attributions add up to the log-odds difference between the two ends (up to the
        ``steps``-point trapezoid rule). Zero for a patient without an FA map.
        """
        torch = _torch()
        X = self._check(X)
        out = np.zeros((len(X), *FA_CROP_SHAPE))
        alphas = torch.linspace(0.0, 1.0, steps + 1, device=self._device())
        weights = torch.full((steps + 1,), 1.0 / steps, device=self._device())
        weights[0] = weights[-1] = 0.5 / steps
        for i in range(len(X)):
            batch, has = self._tensors(X.take([i]))
            if not has[0, 0]:
                continue
            path = {k: v.expand(steps + 1, *v.shape[1:]).clone() for k, v in batch.items()}
            path["fa"] = (alphas.view(-1, 1, 1, 1) * batch["fa"]).requires_grad_(True)
            present = self._present(np.repeat(has, steps + 1, axis=0))
            grads = torch.autograd.grad(self.network_(path, present).sum(), path["fa"])[0]
            out[i] = (batch["fa"][0] * (weights.view(-1, 1, 1, 1) * grads).sum(0)).detach().cpu().numpy()
        return out

    # --- persistence ------------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write ``<path>.pt`` (the network's state_dict) and ``<path>.json`` (parameters, scaling, history)."""
        torch = _torch()
        check_is_fitted(self, "network_")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in self.network_.state_dict().items()}, path.with_suffix(".pt"))
        meta = {"estimator": type(self).__name__, "params": self.get_params(), "clinical_names": list(self.clinical_names_),
                "scales": self.scales_, "best_epoch": self.best_epoch_, "history": self.history_.to_dict("list")}
        path.with_suffix(".json").write_text(json.dumps(meta))


def load_fusion(path: str | Path) -> FusionClassifier:
    """A fitted :class:`FusionClassifier` written by its ``save``; InputError when unreadable."""
    torch = _torch()
    path = Path(path)
    try:
        meta = json.loads(path.with_suffix(".json").read_text())
        model = FusionClassifier(**meta["params"])
        state = torch.load(path.with_suffix(".pt"), weights_only=True, map_location="cpu")
        network = _network(len(meta["clinical_names"]), model.embedding_size, model.fusion)
        network.load_state_dict(state)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise InputError(f"cannot read the saved fusion model ({exc}); train it again.", source=str(path)) from exc
    network.eval()
    model.network_ = network.to(model._device())
    model.clinical_names_ = tuple(meta["clinical_names"])
    model.scales_ = {k: tuple(v) for k, v in meta["scales"].items()}
    model.best_epoch_ = int(meta["best_epoch"])
    model.history_ = pd.DataFrame(meta["history"])
    model.classes_ = np.array([0, 1])
    return model
