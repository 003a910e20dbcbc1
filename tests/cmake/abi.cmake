# ABI tests: plugins built against the frozen 1.0 SDK (tests/abi/sdk-1.0), each
# good or broken in one way, with test-only manifests.  Everything goes under
# <build>/tests/abi/ (never into the real plugins.d of the build tree):
#   plugins/   tessera-abi-*.so      plugins.d/  *.yaml     override/{a,b}/*.yaml
#   stub/      libtsrabistub.so  (deliberately not on any search path)
set(TESSERA_ABI_DIR "${PROJECT_BINARY_DIR}/tests/abi")
set(TESSERA_ABI_SRC "${CMAKE_CURRENT_LIST_DIR}/../abi")

add_library(tsrabistub SHARED "${TESSERA_ABI_SRC}/plugins/abi_stub.c")
set_target_properties(tsrabistub PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${TESSERA_ABI_DIR}/stub")

set(TESSERA_ABI_PLUGIN_TARGETS "")
# tessera_abi_plugin(<name> [ENTRY|NOENTRY] [DEFS ...] [LIBS ...])
function(tessera_abi_plugin name)
  cmake_parse_arguments(A "NOENTRY" "" "DEFS;LIBS" ${ARGN})
  set(tgt tessera-abi-${name})
  add_library(${tgt} MODULE "${TESSERA_ABI_SRC}/plugins/abi_plugin.c")
  set_target_properties(${tgt} PROPERTIES PREFIX "" OUTPUT_NAME "tessera-abi-${name}"
    C_VISIBILITY_PRESET hidden SKIP_BUILD_RPATH ON
    LIBRARY_OUTPUT_DIRECTORY "${TESSERA_ABI_DIR}/plugins")
  # The frozen SDK only: never the current include/.
  target_include_directories(${tgt} PRIVATE "${TESSERA_ABI_SRC}/sdk-1.0")
  target_compile_definitions(${tgt} PRIVATE ABI_NAME="abi-${name}" ${A_DEFS})
  target_link_options(${tgt} PRIVATE "-Wl,--no-undefined")
  if(NOT A_NOENTRY)
    target_link_options(${tgt} PRIVATE "-Wl,--version-script=${TESSERA_PLUGIN_VERSION_SCRIPT}")
  endif()
  target_link_libraries(${tgt} PRIVATE ${A_LIBS})
  set(TESSERA_ABI_PLUGIN_TARGETS ${TESSERA_ABI_PLUGIN_TARGETS} ${tgt} PARENT_SCOPE)
endfunction()

tessera_abi_plugin(good)
tessera_abi_plugin(good-low)
tessera_abi_plugin(model DEFS ABI_MODEL)
tessera_abi_plugin(major2 DEFS ABI_MAJOR=2)
tessera_abi_plugin(minor99 DEFS ABI_MINOR=99)
tessera_abi_plugin(probefail DEFS ABI_PROBE_FAIL)
tessera_abi_plugin(noentry NOENTRY DEFS ABI_NO_ENTRY)
tessera_abi_plugin(nulldesc DEFS ABI_RETURN_NULL)
tessera_abi_plugin(missingdep DEFS ABI_USE_STUB LIBS tsrabistub)

file(GLOB _abi_manifests CONFIGURE_DEPENDS "${TESSERA_ABI_SRC}/manifests/*.yaml")
foreach(m ${_abi_manifests})
  get_filename_component(f "${m}" NAME)
  configure_file("${m}" "${TESSERA_ABI_DIR}/plugins.d/${f}" COPYONLY)
endforeach()
foreach(f a/same.yaml b/same.yaml b/only-b.yaml)
  configure_file("${TESSERA_ABI_SRC}/override/${f}" "${TESSERA_ABI_DIR}/override/${f}" COPYONLY)
endforeach()

add_custom_target(tessera-abi-plugins ALL DEPENDS ${TESSERA_ABI_PLUGIN_TARGETS})
foreach(t test_registry)
  if(TARGET ${t})
    add_dependencies(${t} tessera-abi-plugins)
  endif()
endforeach()

# Frozen offsets: tests/abi/offsets.c compiled against the current headers and
# against the frozen copy; a moved 1.0 member fails the build.
add_library(tessera-abi-offsets OBJECT "${TESSERA_ABI_SRC}/offsets.c")
target_include_directories(tessera-abi-offsets PRIVATE "${PROJECT_SOURCE_DIR}/include")
add_library(tessera-abi-offsets-frozen OBJECT "${TESSERA_ABI_SRC}/offsets.c")
target_include_directories(tessera-abi-offsets-frozen PRIVATE "${TESSERA_ABI_SRC}/sdk-1.0")
add_dependencies(tessera-abi-plugins tessera-abi-offsets tessera-abi-offsets-frozen)

# Every public header compiles on its own, as C11 and as C++.
find_program(TESSERA_CXX_FOR_TESTS NAMES c++ g++ clang++)
add_test(NAME abi.headers
  COMMAND bash "${TESSERA_ABI_SRC}/headers.sh" "${CMAKE_C_COMPILER}" "${TESSERA_CXX_FOR_TESTS}"
          "${PROJECT_SOURCE_DIR}/include" "${TESSERA_ABI_SRC}/sdk-1.0"
  WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}")

