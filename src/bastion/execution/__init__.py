"""Order management: client order ids, routing to venues, applying venue events."""

from bastion.execution.engine import ExecutionEngine
from bastion.execution.ids import ClientOrderIdGenerator

__all__ = ["ClientOrderIdGenerator", "ExecutionEngine"]
