"""The method registry and the built-in methods (one file per family)."""
from stabench.methods.base import Method, MethodParams, Schedule, check_method
from stabench.methods.consensus import Consensus
from stabench.methods.extragradient import Extragradient
from stabench.methods.gradreg import GradReg
from stabench.methods.lookahead import Lookahead
from stabench.methods.optimistic import Optimistic
from stabench.methods.sga import Sga
from stabench.methods.spectral_norm import SpectralNorm
from stabench.methods.unrolled import Unrolled
from stabench.methods.vanilla import Vanilla
from stabench.methods.wgan import WGAN, WGANGP
from stabench.methods.zero_centred import ZeroCentred
from stabench.registry import Registry


def _from_class(cls: type, name: str) -> Method:
    """A method class named by an entry point becomes the variant of that name with the class's defaults."""
    return cls(name, (cls.__doc__ or name).strip().splitlines()[0])


METHODS: Registry[Method] = Registry("method", Method, check=check_method, from_class=_from_class)

METHODS.register(Vanilla("vanilla", "GAN with the saturating minimax objective the paper analyses"))
METHODS.register(Vanilla("vanilla-ns", "GAN with Goodfellow's non-saturating G loss -E log D(G(z)) (the DCGAN recipe)",
                         nonsaturating=True))
METHODS.register(GradReg("gradreg",
                         "gradient-regularized GAN: G descends V + eta*|grad_D V|^2 (Nagarajan & Kolter 2017)"))
METHODS.register(GradReg("gradreg-ns", "gradreg with the non-saturating G loss: -E log D(G(z)) + eta*|grad_D V|^2",
                         nonsaturating=True))
METHODS.register(WGAN("wgan",
                      "Wasserstein GAN: linear f, critic weights clipped to [-clip, clip] (Arjovsky et al. 2017)"))
METHODS.register(WGAN("wgan-noclip", "WGAN without clipping, one critic step per G step: the paper's Appendix E system",
                      clip=0.0, n_critic=1))
METHODS.register(WGANGP("wgan-gp",
                        "WGAN with the input-gradient penalty gp_weight*E(|grad_x D|-1)^2 (Gulrajani et al. 2017)"))
for _k in (1, 5, 10, 15):  # 5: the VEEGAN and PacGAN comparisons; 15: the paper's own unrolled script
    METHODS.register(Unrolled(f"unrolled{_k}", f"unrolled GAN: G descends V(D_k, G) through k={_k} steps of D's "
                                               "optimizer (Metz et al. 2017)", k=_k))
METHODS.register(ZeroCentred("r1",
                             "R1: D ascends V - gamma/2 E|grad_x D|^2 on real samples (Mescheder et al. 2018)"))
METHODS.register(ZeroCentred("r2",
                             "R2: D ascends V - gamma/2 E|grad_x D|^2 on generated samples (Mescheder et al. 2018)",
                             penalised="fake"))
METHODS.register(ZeroCentred("r1-ns", "R1 with the non-saturating G loss, as Mescheder et al.'s experiments",
                             nonsaturating=True))
METHODS.register(ZeroCentred("r2-ns", "R2 with the non-saturating G loss", penalised="fake", nonsaturating=True))
METHODS.register(Consensus("consensus",
                           "consensus optimization: both follow v - gamma grad |v|^2/2 (Mescheder et al. 2017)"))
METHODS.register(Sga("sga",
                     "symplectic gradient adjustment xi + lam A^T xi, sign-aligned (Balduzzi et al. 2018)"))
METHODS.register(Extragradient("extragradient", "extragradient: the field at x - eta F(x), applied at x "
                                                "(Korpelevich; Gidel et al. 2019)"))
METHODS.register(Extragradient("extra-adam",
                               "Extra-Adam: extrapolation by each player's own optimizer step (Gidel et al. 2019)",
                               with_optimizer=True))
METHODS.register(Optimistic("optimistic",
                            "optimistic gradient: players follow 2F_t - F_(t-1) (Daskalakis et al. 2018)"))
METHODS.register(Optimistic("optimistic-adam", "Optimistic Adam: each optimizer step taken as 2D_t - D_(t-1) "
                                               "(Daskalakis et al. 2018)", on="update"))
METHODS.register(Lookahead("lookahead", "lookahead-minmax: every k steps both players move alpha towards slow "
                                        "weights (Chavdarova et al. 2021)"))
METHODS.register(SpectralNorm("vanilla-sn", "the plain GAN with spectrally normalised D weights (Miyato et al. 2018)"))

__all__ = ["METHODS", "Method", "MethodParams", "Schedule"]
