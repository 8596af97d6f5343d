"""Super-resolution (task sr): its trainer, and the trained G as an upscaler.
Nothing is imported here, so that a use loads no training code."""
