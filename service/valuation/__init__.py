"""Data valuation: per-provider contribution to a model's quality, reproducible by an auditor.

- :mod:`service.valuation.estimators`: the methods (exact Shapley, permutation Shapley,
  MSR Banzhaf, leave-one-out, exact KNN-Shapley) over a utility that returns integer bps.
- :mod:`service.valuation.stream`: the seeded random stream every sampling method draws from.
- :mod:`service.valuation.utility`: loading a ``module:function`` utility, its hash, the cache.
- :mod:`service.valuation.examples`: the scikit-learn utilities shipped for the demo.
- :mod:`service.valuation.run`: the seed rule, ``tally evaluate`` and ``tally audit valuation``.
"""
