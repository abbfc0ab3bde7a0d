# CUTLASS/CuTe headers for the tensor-core kernels of the CUDA backend (src/cuda/tc). Header-only;
# scripts/install-deps.sh unpacks them from the nvidia-cutlass wheel into .deps/cutlass/include.
# Without them the CUDA backend is built with its generic direct kernels only.
set(CONVGRAD_CUTLASS_DIR "${PROJECT_SOURCE_DIR}/.deps/cutlass/include" CACHE PATH
    "Folder holding cutlass/ and cute/ (CUTLASS 3.x/4.x headers, with cutlass/util)")
set(CONVGRAD_HAVE_CUTLASS OFF)
if(CONVGRAD_HAVE_CUDA)
  if(EXISTS "${CONVGRAD_CUTLASS_DIR}/cutlass/conv/kernel/conv_universal.hpp"
     AND EXISTS "${CONVGRAD_CUTLASS_DIR}/cute/tensor.hpp"
     AND EXISTS "${CONVGRAD_CUTLASS_DIR}/cutlass/util/packed_stride.hpp")
    set(CONVGRAD_HAVE_CUTLASS ON)
  endif()
  if(CONVGRAD_HAVE_CUTLASS)
    message(STATUS "convgrad: CUTLASS tensor-core kernels ON (${CONVGRAD_CUTLASS_DIR})")
  else()
    message(STATUS "convgrad: CUTLASS tensor-core kernels OFF: no CUTLASS headers in "
                   "${CONVGRAD_CUTLASS_DIR} (scripts/install-deps.sh fetches them); the CUDA "
                   "backend has its direct kernels only")
  endif()
endif()
