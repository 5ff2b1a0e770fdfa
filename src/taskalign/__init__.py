"""taskalign: does this vision foundation model's pretraining fit my task, and what does that buy me?

Reproduces, as software, the study of Huang et al. (ISBI 2026, arXiv 2601.15888): VFMs with
different pretraining fine-tuned on five prostate mpMRI tasks, compared with specialised models,
with the change of their features measured by MMD² (D2P, D2R, D2S).

    import taskalign
    enc = taskalign.create_encoder("profound_conv", size="micro")
    feats = enc.forward_features(x)          # {"pooled": (B, D), "maps": [...]}
"""
from taskalign.data.case import SEQUENCES, Case
from taskalign.encoders import create_encoder, list_encoders, register_encoder
from taskalign.pretrain import register_pretrainer
from taskalign.tasks import create_task, list_tasks, register_task
from taskalign.data.sources import register_source

__version__ = "0.1.0"
__all__ = ["SEQUENCES", "Case", "create_encoder", "list_encoders", "register_encoder", "register_pretrainer",
           "create_task", "list_tasks", "register_task", "register_source", "__version__"]
