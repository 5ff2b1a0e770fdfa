"""Experiments beyond the study grid: `transfer_matrix` varies the pretraining on purpose (the
same architecture pretrained in several ways, fine-tuned on every task) so that alignment and
gain can be compared without the architecture confound."""
