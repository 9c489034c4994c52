"""Generic extra loss terms, registered by name in ``models.plugins`` (configs: ``losses:``)."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import build_model, load_checkpoint
from .plugins import register_loss


@register_loss("kd")
def knowledge_distillation(model: nn.Module, teacher: str, T: float = 4.0, alpha: float = 0.9):
    """Hinton et al. (2015) distillation from the model in checkpoint ``teacher``.

    The loop already adds the cross-entropy with weight 1, so the term is
    ``alpha * (T² * KL(teacher || student at temperature T) - CE)``: the total is the classic
    ``(1 - alpha) * CE + alpha * T² * KL``. ``T²`` keeps the soft gradients' scale independent
    of the temperature.
    """
    if not (math.isfinite(T) and T > 0 and 0 <= alpha <= 1):
        raise ValueError(f"losses.kd: need T > 0 and 0 <= alpha <= 1, got T={T}, alpha={alpha}")
    teacher_model = build_model(load_checkpoint(teacher), teacher).eval()
    teacher_model.requires_grad_(False)

    def term(inputs: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        teacher_model.to(inputs.device)  # no-op after the first call
        with torch.no_grad():
            teacher_logits = teacher_model(inputs)
        soft = F.kl_div(F.log_softmax(logits / T, dim=1), F.log_softmax(teacher_logits / T, dim=1),
                        reduction="batchmean", log_target=True)
        return alpha * (T * T * soft - F.cross_entropy(logits, targets))

    return term
