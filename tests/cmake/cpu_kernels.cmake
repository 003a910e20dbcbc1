# The cpu backend's inner kernels: every ISA variant against the C reference,
# and the C reference of the GGML block dot products against the core's
# dequantizers (tests/kernels/cpu_kernels.c).
add_executable(test_cpu_kernels "${CMAKE_CURRENT_SOURCE_DIR}/kernels/cpu_kernels.c"
  "${CMAKE_CURRENT_SOURCE_DIR}/unit/tsr_test.c")
target_link_libraries(test_cpu_kernels PRIVATE tessera-cpu-kernels tessera-core m)
target_include_directories(test_cpu_kernels PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/unit"
  "${PROJECT_SOURCE_DIR}/backends/cpu/kernels" "${PROJECT_SOURCE_DIR}/core")
target_compile_definitions(test_cpu_kernels PRIVATE _GNU_SOURCE=)
add_test(NAME unit.test_cpu_kernels COMMAND test_cpu_kernels WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
