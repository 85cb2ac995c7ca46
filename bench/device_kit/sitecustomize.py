"""Device-side start-up hook (copied into /tmp/site by bench/device_gsplat_env.sh; built by `make device-kit`).

1. `GSPLAT_PREBUILT_SO=/path/gsplat_cuda.so`: `import gsplat.csrc` loads that extension (built by an
   earlier call's JIT, under the name `gsplat_cuda`), so gsplat skips its ~70 s JIT compile.
2. No CUDA_HOME: point it at the pip `nvidia` CUDA toolkit's nvcc if one is on sys.path, so gsplat's
   JIT (torch.utils.cpp_extension) finds a compiler on the device image.
"""
import importlib.abc
import importlib.util
import os
import sys
from pathlib import Path


class _PrebuiltGsplat(importlib.abc.MetaPathFinder):
    def __init__(self, so: str) -> None:
        self.so = so

    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 - importlib protocol
        if name != "gsplat.csrc":
            return None
        import torch  # noqa: F401 - the extension links against torch's libraries

        spec = importlib.util.spec_from_file_location("gsplat_cuda", self.so)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        sys.modules["gsplat.csrc"] = mod
        return importlib.util.spec_from_loader(name, _Done(mod))


class _Done(importlib.abc.Loader):
    def __init__(self, mod) -> None:  # noqa: ANN001
        self.mod = mod

    def create_module(self, spec):  # noqa: ANN001, ANN201
        return self.mod

    def exec_module(self, module) -> None:  # noqa: ANN001
        pass


_so = os.environ.get("GSPLAT_PREBUILT_SO")
if _so and Path(_so).is_file():
    sys.meta_path.insert(0, _PrebuiltGsplat(_so))

if not os.environ.get("CUDA_HOME"):
    for _p in sys.path:
        for _nvcc in sorted(Path(_p or ".").glob("nvidia/cu*/bin/nvcc")) + sorted(Path(_p or ".").glob("nvidia/cuda_nvcc/bin/nvcc")):
            os.environ["CUDA_HOME"] = str(_nvcc.parent.parent)
            break
        if os.environ.get("CUDA_HOME"):
            break
