"""Frame prediction (task predict): its trainer, and the trained G drawing futures.
Nothing is imported here, so that a use loads no training code."""
