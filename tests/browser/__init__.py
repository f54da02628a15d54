"""Helpers for the browser test: a JupyterLab server started like `make lab`, and a headless
Chromium that runs notebooks in it and reads what the learner would see."""
