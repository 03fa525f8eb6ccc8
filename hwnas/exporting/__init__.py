"""Export to a device: ONNX export (:mod:`~hwnas.exporting.onnx_export`), the mixed-precision policy
search (:mod:`~hwnas.exporting.mixed`), :func:`hwnas.exporting.build.build` → a
:class:`~hwnas.exporting.bundle.DeploymentBundle`, and :func:`hwnas.exporting.verify.verify` → a
:class:`~hwnas.types.Verification`. Nothing here knows of the search."""
