"""The model zoo: segmentation networks by the names configs use.

    build_model("deeplabv3plus", in_channels=3, num_classes=2)        # the paper's 2D baseline
    build_model("unet3d", in_channels=1, num_classes=3, width=0.5)

Every model maps (B, in_channels, *S) to logits (B, num_classes, *S) at the input's
resolution, and declares ``spatial_dims``, ``size_divisor`` (what every spatial size
must be a multiple of) and ``feature_stages`` (:class:`~dragsaw.workloads.plugins.Stage`:
``encoder.1``.. by increasing stride, ``decoder.1``.. from the deepest, ``aspp`` for
DeepLabV3+), so that plug-in configs name stages rather than module paths.

Registered: ``deeplabv3plus`` (2D, aligned Xception-65), ``unet`` (2D), ``fcn`` (2D,
FCN-8s on VGG-16), ``unet3d`` (3D, nnU-Net-style, MONAI DynUNet).
"""

from dragsaw.workloads.models._layers import SegmentationModel, scaled
from dragsaw.workloads.models._registry import (
           build_model,
           model_names,
           model_options,
           register_model,
)
from dragsaw.workloads.models.deeplabv3plus import DeepLabV3Plus
from dragsaw.workloads.models.fcn import FCN8s
from dragsaw.workloads.models.unet import UNet
from dragsaw.workloads.models.unet3d import UNet3D

__all__ = ["register_model", "build_model", "model_names", "model_options", "SegmentationModel", "scaled",
           "DeepLabV3Plus", "UNet", "FCN8s", "UNet3D"]
