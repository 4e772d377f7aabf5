"""The classifier-gain benchmark (``python benchmarks/classifier_gain.py``), by stage.

``corpus`` (decode a data root once) → ``splits`` / ``protocol`` (recordist-grouped splits with
the minority cut, the run loop) → ``conditions`` (each condition's training set) →
``classifiers`` (classifiers on log-mel features, metrics) → ``report`` (statistics, Markdown,
JSON, chart); ``cli`` ties them together.
"""
