# SPDX-License-Identifier: GPL-3.0-or-later
"""PoseDiff: pose characters with a diffusion model (Blender extension).

Only register/unregister live here. The bpy-dependent modules are imported inside
``register()`` so that the pure modules (``retarget``, ``rig_presets``, ``client``,
``camera_math``) import without Blender.
"""

_classes = []


def _modules():
    from . import operators, operators_video, panels, preferences, properties

    return (preferences, properties, operators, panels, operators_video)


def register():
    import atexit

    import bpy

    from . import backend_process, properties

    _classes.clear()
    for mod in _modules():
        for cls in mod.CLASSES:
            bpy.utils.register_class(cls)
            _classes.append(cls)
    properties.register_props()
    atexit.register(backend_process.stop)


def unregister():
    import atexit

    import bpy

    from . import backend_process, jobs, properties, results

    jobs.forget()
    backend_process.stop()
    atexit.unregister(backend_process.stop)
    results.free_previews()
    properties.unregister_props()
    for cls in reversed(_classes):
        bpy.utils.unregister_class(cls)
    _classes.clear()
