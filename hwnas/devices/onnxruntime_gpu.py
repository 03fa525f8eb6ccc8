"""ONNX Runtime on an NVIDIA GPU: the CUDA and TensorRT execution providers.

Same session settings and timing as the CPU backend; one inference binds its input on the
host and its output to host memory, so ``run()`` returns only when the GPU result is back
(what an application sees). The provider must be present in the installed ONNX Runtime
(``onnxruntime-gpu``) and a GPU visible; otherwise the device is listed as unavailable with
the fix. ``precision="fp16"`` enables TensorRT's FP16 kernels.
"""

from __future__ import annotations

from typing import Any

from hwnas.devices.onnxruntime_cpu import OnnxRuntimeCPU


class _OrtGPU(OnnxRuntimeCPU):
    precisions_offered = ("fp32", "fp16")
    provider_name = ""
    extra = "gpu"

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError:
            return False, "onnxruntime is not installed"
        if cls.provider_name not in ort.get_available_providers():
            return False, (f"this ONNX Runtime build has no {cls.provider_name}: on a machine with an NVIDIA GPU, "
                           "'pip uninstall -y onnxruntime && pip install onnxruntime-gpu'")
        return True, ort.__version__

    def provider(self) -> str:
        return self.provider_name.removesuffix("ExecutionProvider")

    def hardware(self) -> str:
        try:
            import pynvml

            pynvml.nvmlInit()
            return pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(0))
        except Exception:  # pynvml missing or no driver: fall back to the CPU's name
            return super().hardware()

    def providers(self) -> list[Any]:
        return [self.provider_name, "CPUExecutionProvider"]


class OnnxRuntimeCUDA(_OrtGPU):
    name = "onnxruntime-cuda"
    provider_name = "CUDAExecutionProvider"
    description = "ONNX Runtime, CUDA execution provider (NVIDIA GPU)"


class OnnxRuntimeTensorRT(_OrtGPU):
    name = "onnxruntime-tensorrt"
    provider_name = "TensorrtExecutionProvider"
    description = "ONNX Runtime, TensorRT execution provider (NVIDIA GPU; fp16 on request)"

    def providers(self) -> list[Any]:
        opts = {"trt_fp16_enable": self.precision == "fp16"}
        return [(self.provider_name, opts), "CUDAExecutionProvider", "CPUExecutionProvider"]
