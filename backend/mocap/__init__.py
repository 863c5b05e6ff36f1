"""Motion capture readers and the training data of the prior (used for training and evaluation only).

* :mod:`.bvh`, :mod:`.amc` -- BVH and ASF/AMC parsers.
* :mod:`.mapping` -- mapping files (``mappings/*.toml``): a mocap skeleton -> the model joints.
* :mod:`.clips` -- clips -> model-skeleton joints (with a mapping), derived joints, loading.
* :mod:`.datasets` -- Human3.6M and mocap pose sets, bone-length normalisation, augmentation.
"""
