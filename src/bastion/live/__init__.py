"""Live mode: what a node trading real money must have before it may start (a minimum
set of risk limits, isolated strategies, a clean git tree, an arming that has not
expired, a vault of its own)."""
