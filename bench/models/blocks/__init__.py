"""Building blocks shared by the models (section 1 of ``docs/models.md``): TPS grids, the CP-VTON geometric
matching module, the pix2pix-style U-Net, the VGG19 perceptual loss and the person representation."""
