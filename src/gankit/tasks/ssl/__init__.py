"""Semi-supervised learning (task ssl): its trainer, and the trained D as a classifier.
Nothing is imported here, so that a use loads no training code."""
