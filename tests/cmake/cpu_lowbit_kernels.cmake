# The cpu backend's kernels for the quantizer formats INT_GROUP and
# CODEBOOK4: every ISA variant of backends/cpu/kernels/lowbit*.c and the
# whole MUL_MAT of matmul-lowbit.c (and, for a 16-bit compute dtype, the
# dequantize_row path of matmul-c.c) against the core's reference
# dequantizer (tests/kernels/cpu_lowbit_kernels.c).
add_executable(test_cpu_lowbit_kernels "${CMAKE_CURRENT_SOURCE_DIR}/kernels/cpu_lowbit_kernels.c"
  "${CMAKE_CURRENT_SOURCE_DIR}/unit/tsr_test.c"
  "${PROJECT_SOURCE_DIR}/backends/cpu/kernels/matmul-lowbit.c"
  "${PROJECT_SOURCE_DIR}/backends/cpu/kernels/matmul-c.c"
  "${PROJECT_SOURCE_DIR}/backends/cpu/pool.c")
target_link_libraries(test_cpu_lowbit_kernels PRIVATE tessera-cpu-kernels tessera-core Threads::Threads m)
target_include_directories(test_cpu_lowbit_kernels PRIVATE "${CMAKE_CURRENT_SOURCE_DIR}/unit"
  "${PROJECT_SOURCE_DIR}/backends/cpu" "${PROJECT_SOURCE_DIR}/backends/cpu/kernels"
  "${PROJECT_SOURCE_DIR}/core")
target_compile_definitions(test_cpu_lowbit_kernels PRIVATE _GNU_SOURCE=)
add_test(NAME unit.test_cpu_lowbit_kernels COMMAND test_cpu_lowbit_kernels
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
