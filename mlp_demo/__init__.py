"""mlp_demo: a multi-layer perceptron learning MNIST, and an app to watch it learn.

This folder is the lecture's core: config, data, model, train (the six-step loop), drawing,
checkpoints, insight, plots, teach, examples and web/ (the browser's side). server/ is the wing
that serves many visitors; ui/ is the page. The core imports neither (tests/test_imports.py).
"""
