"""The diffusion prior and its guided sampler, independent of photos, HTTP and mocap formats.

* :mod:`.model` -- the denoiser (residual MLP, x0-prediction) and its safetensors weights.
* :mod:`.schedule` -- the DDPM noise schedule and the DDIM update.
* :mod:`.guidance` -- the guidance terms (2D evidence, known joints, known directions) and the
  geometry they share (root solve, yaw alignment, tree walk).
* :mod:`.sampler` -- guided DDIM sampling: estimation, completion, variations, generation.
* :mod:`.train` -- ``posediff train``.
"""
