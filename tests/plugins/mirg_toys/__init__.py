"""Extensions defined outside mirg, as a user's own package would hold them.

Tests put ``tests/plugins`` on the path and name these by dotted path
(``mirg_toys.bench.BENCH``, ``mirg_toys.reward.length_reward`` …): each runs through
mirg's command line with no edit to mirg.
"""
