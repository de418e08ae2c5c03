"""bastion: a runtime that runs automated trading strategies live, securely and reliably."""

__version__ = "0.1.0"
