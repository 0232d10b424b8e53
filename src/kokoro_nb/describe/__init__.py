"""Layer 3, describing the corpus: section 4 statistics, their inference, and the reproduction ledger.

Modules, each importing only those below it (``lint-imports`` checks this):

========= ===============================================================================
ledger    the paper's descriptive figures against the data; the chapters' comparison tables
profiles  paper Table 1: a corpus's profile, label shares, an excerpt
stats     section 4 and Table 3: the descriptive numbers, and ``summary`` (``kokoro-nb stats``)
inference bootstrap intervals, variance components, regression, the topic test
variables what is measured per dialogue: the Figure-4 features, the item sum, labels
========= ===============================================================================
"""
