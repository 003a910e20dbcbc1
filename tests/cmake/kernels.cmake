# Kernel tests (tests/kernels): each backend plugin against the cpu backend's
# reference kernels, on fresh random inputs every run.  GPU plugins built on
# a machine without their GPU check the no-device path instead (probe()
# refuses with a sentence; `tessera plugins` lists them as not usable);
# scripts/gpu-tests.sh runs the full comparison on a GPU machine.
add_executable(tessera-kernel-test "${CMAKE_CURRENT_LIST_DIR}/../kernels/kernel_test.c")
target_link_libraries(tessera-kernel-test PRIVATE tessera-core m ${CMAKE_DL_LIBS})
target_compile_definitions(tessera-kernel-test PRIVATE _GNU_SOURCE=)
set(_kt_cpu "$<TARGET_FILE:tessera-plugin-cpu>")
add_dependencies(tessera-kernel-test tessera-plugin-cpu)

if(TARGET tessera-plugin-onednn)
  add_dependencies(tessera-kernel-test tessera-plugin-onednn)
  add_test(NAME kernels.onednn
    COMMAND tessera-kernel-test ${_kt_cpu} $<TARGET_FILE:tessera-plugin-onednn> --require mul_mat
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
  # every matmul through oneDNN, single rows included
  add_test(NAME kernels.onednn_all_rows
    COMMAND tessera-kernel-test ${_kt_cpu} $<TARGET_FILE:tessera-plugin-onednn> --require mul_mat
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
  set_tests_properties(kernels.onednn_all_rows PROPERTIES ENVIRONMENT "TESSERA_ONEDNN_MIN_ROWS=1")
endif()

# GPU plugins: TESSERA_TEST_GPU=ON (scripts/gpu-tests.sh sets it) runs the
# comparison; otherwise the machine is expected to have no such GPU.
option(TESSERA_TEST_GPU "Run the GPU kernel tests (a GPU is present)" OFF)
foreach(gpu cuda hip)
  if(TARGET tessera-plugin-${gpu})
    add_dependencies(tessera-kernel-test tessera-plugin-${gpu})
    if(TESSERA_TEST_GPU)
      add_test(NAME kernels.${gpu}
        COMMAND tessera-kernel-test ${_kt_cpu} $<TARGET_FILE:tessera-plugin-${gpu}>
                --require mul_mat,get_rows,rms_norm,rope,softmax,attention,unary,binary,gated,kv_store
        WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
    else()
      add_test(NAME kernels.${gpu}_no_device
        COMMAND tessera-kernel-test ${_kt_cpu} $<TARGET_FILE:tessera-plugin-${gpu}> --expect-no-device
        WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
      add_test(NAME kernels.${gpu}_registry_no_device
        COMMAND bash "${CMAKE_CURRENT_LIST_DIR}/../kernels/registry_no_device.sh" ${gpu}
        WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
      set_tests_properties(kernels.${gpu}_registry_no_device PROPERTIES ENVIRONMENT
        "TESSERA=$<TARGET_FILE:tessera-cli>;TESSERA_BUILD_DIR=${PROJECT_BINARY_DIR}")
    endif()
  endif()
endforeach()
if(TARGET tessera-plugin-hip-on-cuda AND TESSERA_TEST_GPU)
  add_test(NAME kernels.hip_on_cuda
    COMMAND tessera-kernel-test ${_kt_cpu} $<TARGET_FILE:tessera-plugin-hip-on-cuda>
            --require mul_mat,get_rows,rms_norm,rope,softmax,attention,unary,binary,gated,kv_store
    WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
endif()

# tests/cli/backends_onednn.sh exits 77 when the onednn plugin was not built.
if(TEST cli.backends_onednn)
  set_tests_properties(cli.backends_onednn PROPERTIES SKIP_RETURN_CODE 77)
endif()

# LeakSanitizer's exit-time scan crashes ("Tracer caught signal 11") while
# libgomp's worker threads (oneDNN's OpenMP) are parked; with one OpenMP
# thread the leak check runs and passes.
if(TESSERA_SANITIZE)
  foreach(t kernels.onednn kernels.onednn_all_rows cli.backends_onednn)
    if(TEST ${t})
      set_property(TEST ${t} APPEND PROPERTY ENVIRONMENT "OMP_NUM_THREADS=1")
    endif()
  endforeach()
endif()
