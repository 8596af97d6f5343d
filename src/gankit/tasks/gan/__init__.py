"""The GAN (task gan): its trainer, and inpainting with a trained run.
Nothing is imported here, so that a use loads no training code."""
