"""The verbs, one version each for every modality: train, evaluate, compare, rank, auto, pretrain."""
