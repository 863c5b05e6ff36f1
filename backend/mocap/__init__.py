"""Motion capture readers and the training data of the prior (used for training and evaluation only).

* :mod:`.bvh`, :mod:`.amc` -- BVH and ASF/AMC parsers.
* :mod:`.clips` -- mapping files (``mappings/*.toml``) and clips -> model-skeleton joints.
* :mod:`.datasets` -- Human3.6M and mocap pose sets, bone-length normalisation, augmentation.
"""
