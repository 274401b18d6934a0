"""The method registry and the built-in methods (one file per family)."""
from stabench.methods.base import Method, MethodParams, Schedule, check_method
from stabench.methods.gradreg import GradReg
from stabench.methods.unrolled import Unrolled
from stabench.methods.vanilla import Vanilla
from stabench.methods.wgan import WGAN, WGANGP
from stabench.registry import Registry



def _from_class(cls: type, name: str) -> Method:
    """A method class named by an entry point becomes the variant of that name with the class's defaults."""
    return cls(name, (cls.__doc__ or name).strip().splitlines()[0])


METHODS: Registry[Method] = Registry("method", Method, check=check_method, from_class=_from_class)

METHODS.register(Vanilla("vanilla", "GAN with the saturating minimax objective the paper analyses"))
METHODS.register(GradReg("gradreg", "gradient-regularized GAN: G descends V + eta*|grad_D V|^2 (Nagarajan & Kolter 2017)"))
METHODS.register(WGAN("wgan", "Wasserstein GAN: linear f, critic weights clipped to [-clip, clip] (Arjovsky et al. 2017)"))
METHODS.register(WGANGP("wgan-gp", "WGAN with the input-gradient penalty gp_weight*E(|grad_x D|-1)^2 (Gulrajani et al. 2017)"))
METHODS.register(Unrolled("unrolled1", "unrolled GAN: G descends V(D_k, G) through k=1 step of D's optimizer (Metz et al. 2017)", k=1))
METHODS.register(Unrolled("unrolled10", "unrolled GAN: G descends V(D_k, G) through k=10 steps of D's optimizer (Metz et al. 2017)", k=10))

__all__ = ["METHODS", "Method", "MethodParams", "Schedule"]
