"""Pre-trade risk: the gate every order passes through, and the trading state."""

from bastion.risk.config import RiskConfig
from bastion.risk.gate import RiskGate
from bastion.risk.reasons import DenyReason

__all__ = ["DenyReason", "RiskConfig", "RiskGate"]
