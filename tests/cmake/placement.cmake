# Placement tests: the test-only backend "fakedev" (tests/plugins/fakedev) with
# its own plugins.d under <build>/tests/fakedev/, never installed and never in
# the build tree's real plugins.d; tests reach it through TESSERA_PLUGIN_PATH.
set(TESSERA_FAKEDEV_DIR "${PROJECT_BINARY_DIR}/tests/fakedev")
add_library(tessera-fakedev MODULE "${CMAKE_CURRENT_LIST_DIR}/../plugins/fakedev/fakedev.c")
set_target_properties(tessera-fakedev PROPERTIES PREFIX "" OUTPUT_NAME "tessera-fakedev"
  C_VISIBILITY_PRESET hidden LIBRARY_OUTPUT_DIRECTORY "${TESSERA_FAKEDEV_DIR}/lib")
target_include_directories(tessera-fakedev PRIVATE "${PROJECT_SOURCE_DIR}/include")
target_link_options(tessera-fakedev PRIVATE
  "-Wl,--version-script=${TESSERA_PLUGIN_VERSION_SCRIPT}" "-Wl,--no-undefined")
target_link_libraries(tessera-fakedev PRIVATE m)
configure_file("${CMAKE_CURRENT_LIST_DIR}/../plugins/fakedev/fakedev.yaml"
  "${TESSERA_FAKEDEV_DIR}/plugins.d/fakedev.yaml" COPYONLY)
foreach(t test_placement)
  if(TARGET ${t})
    add_dependencies(${t} tessera-fakedev)
    set_tests_properties(unit.${t} PROPERTIES ENVIRONMENT
      "TESSERA_BUILD_DIR=${PROJECT_BINARY_DIR};TESSERA_PLUGIN_PATH=${TESSERA_FAKEDEV_DIR}/plugins.d:${TESSERA_BUILD_MANIFEST_DIR}")
  endif()
endforeach()
if(TEST cli.device_map_fakedev)
  set_tests_properties(cli.device_map_fakedev PROPERTIES ENVIRONMENT
    "TESSERA=$<TARGET_FILE:tessera-cli>;TESSERA_BUILD_DIR=${PROJECT_BINARY_DIR};TESSERA_SOURCE_DIR=${PROJECT_SOURCE_DIR};TESSERA_PLUGIN_PATH=${TESSERA_FAKEDEV_DIR}/plugins.d")
endif()
