"""The method registry and the built-in methods (one file per family)."""
from stabench.methods.base import Method, MethodParams, Schedule
from stabench.methods.gradreg import GradReg
from stabench.methods.vanilla import Vanilla
from stabench.registry import Registry

METHODS: Registry[Method] = Registry("method", Method)

METHODS.register(Vanilla("vanilla", "GAN with the saturating minimax objective the paper analyses"))
METHODS.register(GradReg("gradreg", "gradient-regularized GAN: G descends V + eta*|grad_D V|^2 (Nagarajan & Kolter 2017)"))

__all__ = ["METHODS", "Method", "MethodParams", "Schedule"]
