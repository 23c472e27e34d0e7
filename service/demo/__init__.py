"""The data-space scenario that `tally demo` runs (EV insurance pricing)."""
