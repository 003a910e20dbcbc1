# bench/quant/compare.c: one quality table for every quantization method
# (docs/quantization.md).  Built with the tests; not installed, not a test.
add_executable(tessera-quant-compare "${PROJECT_SOURCE_DIR}/bench/quant/compare.c")
target_link_libraries(tessera-quant-compare PRIVATE tessera-core m)
target_compile_definitions(tessera-quant-compare PRIVATE _GNU_SOURCE=)
