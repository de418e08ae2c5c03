"""Pre-trade risk: the gate every order passes through, and the trading state."""

from bastion.risk.config import RiskConfig
from bastion.risk.gate import DenyReason, RiskGate

__all__ = ["DenyReason", "RiskConfig", "RiskGate"]
