"""Settlement: policies, contribution-weighted payouts, payout trees, rounds and claims."""
