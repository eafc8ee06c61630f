"""The serving systems the controller drives: one :class:`~jbrl.control.backends.base.Backend`
interface; the discrete-event simulator (:mod:`~jbrl.control.backends.sim`) and Ray Serve with
the real models (:mod:`~jbrl.control.backends.ray`, with the Serve deployments in
:mod:`~jbrl.control.backends.ray_app`; needs the ``ray`` extra, imported lazily)."""
