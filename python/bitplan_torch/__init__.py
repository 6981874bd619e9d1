"""bitplan_torch: sensitivity tables for bitplan from PyTorch models, on GPUs and across nodes.

    from bitplan_torch import sensitivity_table
    table = sensitivity_table(model, [(x, y)], bits=(4, 8))
    table.write_table("table.json")     # then: bitplan solve table.json --max-size 50%

See python/README.md in the bitplan repository.
"""

from .estimators import HessianOperator, TraceResult, exact, hutchinson, hutchpp
from .quant import Quantizer
from .stats import Estimate
from .table import Table, parse_precision, sensitivity_table, write_table
from .units import Unit, find_units

__all__ = ["sensitivity_table", "write_table", "Table", "Quantizer", "parse_precision",
           "find_units", "Unit", "HessianOperator", "TraceResult", "Estimate",
           "hutchinson", "hutchpp", "exact"]
__version__ = "0.1.0"
