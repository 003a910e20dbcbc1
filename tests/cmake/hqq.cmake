# HQQ: the quality bench (bench/quant/hqq.c) doubles as a test of perplexity
# bounds and generation on stories260K through the public API.
add_executable(bench-quant-hqq "${PROJECT_SOURCE_DIR}/bench/quant/hqq.c")
target_link_libraries(bench-quant-hqq PRIVATE tessera-core m)
add_test(NAME quant.hqq_quality COMMAND bench-quant-hqq --check
         WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")
set_tests_properties(quant.hqq_quality PROPERTIES ENVIRONMENT
  "TESSERA_PLUGIN_PATH=${TESSERA_BUILD_MANIFEST_DIR}")
