"""hwsim: hardware cost simulator and analytical model for compressed CNNs.

``trace`` turns a model into a LayerGraph, ``load_accelerator`` reads a spec, ``evaluate`` maps
and costs every layer, ``simulate`` replays the mapped tiles event by event.
"""

from .accel import accelerator_dict, list_accelerators, load_accelerator
from .cost import evaluate, hardware_totals, search_mappings
from .des import simulate
from .export import scalesim_files
from .layer import Layer, LayerGraph
from .trace import trace

__all__ = ["Layer", "LayerGraph", "accelerator_dict", "evaluate", "hardware_totals",
           "list_accelerators", "load_accelerator", "scalesim_files", "search_mappings", "simulate",
           "trace"]
