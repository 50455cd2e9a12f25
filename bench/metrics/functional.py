"""Functional forms of every metric: one call on tensors, no state.

Image inputs are ``N x C x H x W`` uint8 or float in [0, 1] (see ``bench.metrics._images``).
"""

from bench.metrics.disp import displacement, warp_mask, warp_points
from bench.metrics.fid import fid_from_features, frechet_distance, statistics
from bench.metrics.inception_score import inception_score_from_logits
from bench.metrics.iou import mask_iou
from bench.metrics.kid import kid_from_features
from bench.metrics.lpips import lpips
from bench.metrics.lssim import lssim
from bench.metrics.mask_ssim import mask_ssim
from bench.metrics.masks import apply_mask, pose_mask, region_mask
from bench.metrics.miou import class_iou_counts
from bench.metrics.psnr import psnr
from bench.metrics.ssim import ssim, ssim_map

__all__ = ["apply_mask", "class_iou_counts", "displacement", "fid_from_features", "frechet_distance",
           "inception_score_from_logits", "kid_from_features", "lpips", "lssim", "mask_iou", "mask_ssim",
           "pose_mask", "psnr", "region_mask", "ssim", "ssim_map", "statistics", "warp_mask", "warp_points"]
