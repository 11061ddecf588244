"""Stable LM 2 1.6B reproducibility companion."""

import warnings

# tqdm.auto asks for ipywidgets inside a kernel and falls back to its text bar without them, which
# is what the executed notebooks and the HTML report show; the fallback is not a problem to report.
warnings.filterwarnings("ignore", message="IProgress not found", module="tqdm")
